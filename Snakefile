# The DARTS-family pipeline as a Snakemake workflow: a table of contents.
# Every rule calls `python -m pipeline <stage>` (docs/architecture.md); all Python is in rules/common.smk.
#   snakemake all_tables                  local run (profiles/default is picked up automatically)
#   snakemake --profile slurm all_tables  on a SLURM cluster (slurm/config.yaml)

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "rules/common.smk"
include: "rules/prepare.smk"
include: "rules/search.smk"
include: "rules/derive.smk"
include: "rules/retrain.smk"
include: "rules/select.smk"
include: "rules/transfer.smk"
include: "rules/tables.smk"


localrules:
    all,
    all_tables,


rule all:
    default_target: True
    input:
        grid_outputs(),
        rnn_selected_outputs,
        rules.tables.output,


rule all_tables:
    input:
        rules.tables.output,
        # Also here, not only in the tables' input: a target waiting on the select checkpoint (grid.rnn.select)
        # keeps the tables job in the plan when its outputs exist.
        rnn_selected_outputs,
