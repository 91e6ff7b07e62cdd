# The workflow's only Python: which params file the stages read, the run grid, the params slices that
# make Snakemake rerun exactly the stages an edit affects, resources, and input functions.
# Rules hold no logic; each calls `python -m pipeline <stage>` (see docs/architecture.md).

import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The pipeline package sits next to the Snakefile; Snakemake does not put that directory on sys.path.
sys.path.insert(0, workflow.basedir)

from pipeline.config import load_params  # noqa: E402
from pipeline.errors import ConfigError  # noqa: E402
# The results layout and the params slices (pipeline/layout.py); the rules name its path templates.
from pipeline.layout import (  # noqa: E402
    DATA, DATA_NB201, FIGURES, GENOTYPE, NB201, RETRAIN, SEARCH, SELECT, TABLES, TRANSFER, prepared_dir,
    rerun_slice, workflow_path,
)
from pipeline.layout import TRANSFER_TEXT  # noqa: E402
from pipeline.data.text.corpus import CORPUS_FILES  # noqa: E402
from pipeline.data.nb201_split import BENCHMARK_SPLIT_DATASET  # noqa: E402


def _params_file():
    """The one params file every stage reads: params.yaml, or the single file given with --configfile.

    Stages read a file, not Snakemake's merged `config`, so overrides that exist only in Snakemake's
    memory (`--config k=v`, several merged --configfile) would silently differ from what the stages see.
    """
    if workflow.config_settings.config:
        raise WorkflowError(
            "--config overrides are not seen by the stage commands, which read the params file; "
            "write the changes into a copy of params.yaml and pass it with --configfile FILE"
        )
    files = workflow.config_settings.configfiles
    if len(files) > 1:
        raise WorkflowError("give at most one --configfile: each stage reads exactly one params file")
    return os.path.relpath(files[0]) if files else "params.yaml"


PARAMS_FILE = _params_file()
# Every stage reads the params file, so it is an input; ancient() because an edit must rerun only the
# stages whose params slice changed (the `params` trigger), not everything (the `mtime` trigger).
PARAMS_INPUT = ancient(PARAMS_FILE)
try:
    # The same validation the stages run, so a typo fails here, before any job is submitted.
    PARAMS = load_params(PARAMS_FILE)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

DATASETS = list(PARAMS.grid.datasets)
METHODS = list(PARAMS.grid.methods)
SEEDS = [str(seed) for seed in PARAMS.grid.seeds]
TRANSFER_GRID = PARAMS.grid.transfer
# Variants searched directly on ImageNet; their genotypes are evaluated by the transfer stage only.
IMAGENET_METHODS = list(PARAMS.grid.imagenet_methods)
# The demo's ImageNet stand-in is written by `prepare --dataset imagenet_demo`; any other
# data.imagenet_root is a real ImageFolder tree the user provides.
DEMO_IMAGENET = Path(PARAMS.data.imagenet_root) == prepared_dir("imagenet_demo")

# The NAS-Bench-201 sub-grid (grid.nb201): its variants search, derive and (when grid.nb201.retrain) retrain
# on each of its datasets, reading their own prepared data (layout DATA_NB201).
NB201_METHODS = list(PARAMS.grid.nb201.methods)
NB201_DATASETS = list(PARAMS.grid.nb201.datasets) if NB201_METHODS else []
# The recurrent sub-grid (grid.rnn): its variants search and retrain on each corpus of RNN_DATASETS and,
# when grid.rnn.transfer is true, train on RNN_TARGETS (the one corpus grid.rnn.transfer_to).
RNN_DATASETS = list(PARAMS.grid.rnn.datasets)
RNN_METHODS = list(PARAMS.grid.rnn.methods)
RNN_TARGETS = [PARAMS.grid.rnn.transfer_to] if PARAMS.grid.rnn.transfer and RNN_METHODS else []


wildcard_constraints:
    dataset="|".join(dict.fromkeys([*DATASETS, "imagenet_demo", *(["imagenet"] if IMAGENET_METHODS else []),
                                     *NB201_DATASETS, *RNN_DATASETS, *RNN_TARGETS])),
    method="|".join(dict.fromkeys([*METHODS, *IMAGENET_METHODS, *NB201_METHODS, *RNN_METHODS])),
    seed=r"\d+",
    # The corpus a recurrent cell transfers to (rule transfer_text); never "imagenet" (rule transfer).
    target="|".join(CORPUS_FILES),


# ------------------------------------------------------------------------------------------ params slices
# Snakemake reruns a job (and everything downstream) when its `params:` change; what each stage's job
# depends on is stated once, in pipeline/layout.py (rerun_slice), which dvc.yaml is checked against.


def slice_of(stage):
    """The `params:` input function of the `stage` jobs, returning their rerun slice for the wildcards."""
    return lambda wildcards: rerun_slice(stage, PARAMS, wildcards.get("dataset"), wildcards.get("method"))


# -------------------------------------------------------------------------------------------- resources


def res(stage):
    """The scheduler request of a stage from params.yaml `resources.<stage>` (gpu, mem_mb, runtime, cpus)."""
    return getattr(PARAMS.resources, stage)


def search_res(wildcards):
    """A search job's request: `resources.search_imagenet` for the direct ImageNet searches (the papers ran
    them on 8 GPUs), `resources.search` for the rest."""
    return res("search_imagenet" if wildcards.dataset == "imagenet" else "search")


def launcher(stage):
    """`torchrun` (one process per GPU, DDP) when a stage asks for several GPUs, else plain python.

    Search, retrain and transfer carry it in `params:`: the batch size is global, but the GPU count still changes
    the data sharding and random streams, hence the results, and rightly reruns them. Every rule's shell starts with `exec`: SLURM signals all processes
    of a job step before its time limit, and only when the stage is the process Snakemake waits for can
    it write its checkpoint and exit before the step is torn down.
    """
    return launch_command(res(stage).gpu)


def launch_command(gpus):
    """The launcher of a job with `gpus` GPUs (see `launcher`)."""
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m pipeline"
    return "python -m pipeline"



# -------------------------------------------------------------------------------------- input functions


def imagenet_input(wildcards):
    """Transfer needs prepare's demo tree only when data.imagenet_root points at it."""
    return [workflow_path(DATA.format(dataset="imagenet_demo"), "manifest.json")] if DEMO_IMAGENET else []


def prepare_input(wildcards):
    """Sampling ImageNet for a direct search lists the tree at data.imagenet_root (maybe the demo's)."""
    return imagenet_input(wildcards) if wildcards.dataset == "imagenet" else []


def data_manifest(wildcards):
    """The prepared data a search or retrain reads: the NB201 sub-grid's own for its variants."""
    template = DATA_NB201 if wildcards.method in NB201_METHODS else DATA
    return workflow_path(template, "manifest.json").format(dataset=wildcards.dataset)


def nb201_split_input(wildcards):
    """NAS-Bench-201's split file, read by the NB201 sub-grid's cifar10 prepare when prepare.nb201_cifar10_split
    names one."""
    split = PARAMS.prepare.nb201_cifar10_split
    return [split] if split and wildcards.dataset == BENCHMARK_SPLIT_DATASET else []


def nb201_benchmark_input(wildcards):
    """The benchmark archive the tables query (params benchmark.nb201), so replacing it reruns the tables."""
    return [PARAMS.benchmark.nb201] if PARAMS.benchmark.nb201 and NB201_METHODS else []


def grid_outputs():
    """Every final file of the grid known before any job runs: what the tables read and what `rule all` asks
    for, with `rnn_selected_outputs`.

    Searches on a grid dataset are retrained on it (and transferred when grid.transfer is true); direct
    ImageNet searches are evaluated on ImageNet only, by the transfer stage.
    """
    def cells(template, file, datasets, methods):
        return expand(workflow_path(template, file), dataset=datasets, method=methods, seed=SEEDS)

    grid, direct = (DATASETS, METHODS), (["imagenet"], IMAGENET_METHODS)
    outputs = []
    for datasets, methods in (grid, direct):
        outputs += cells(SEARCH, "summary.json", datasets, methods) + cells(GENOTYPE, "", datasets, methods)
    outputs += cells(RETRAIN, "metrics.json", *grid)
    outputs += cells(SELECT, "metrics.json", *grid) if PARAMS.grid.select else []
    for datasets, methods in ([grid] if TRANSFER_GRID else []) + [direct]:
        outputs += cells(TRANSFER, "metrics.json", datasets, methods)
    nb201 = (NB201_DATASETS, NB201_METHODS)
    outputs += cells(SEARCH, "summary.json", *nb201) + cells(GENOTYPE, "", *nb201)
    outputs += cells(RETRAIN, "metrics.json", *nb201) if PARAMS.grid.nb201.retrain else []
    return outputs + rnn_outputs()


def rnn_outputs():
    """The recurrent sub-grid's final files known before any job runs: search and genotype of every seed on
    each corpus; then the retrain on it and the transfer to grid.rnn.transfer_to (when grid.rnn.transfer is
    true) of every seed, or with grid.rnn.select (DARTS' protocol) the short select training of every seed,
    the full ones of the selected seed coming from `rnn_selected_outputs`."""
    cells = {"dataset": RNN_DATASETS, "method": RNN_METHODS, "seed": SEEDS}
    stages = [(SEARCH, "summary.json"), (GENOTYPE, "")]
    stages += [(SELECT, "metrics.json")] if PARAMS.grid.rnn.select else []
    outputs = [path for template, file in stages for path in expand(workflow_path(template, file), **cells)]
    return outputs + ([] if PARAMS.grid.rnn.select else rnn_trained(cells))


def rnn_selected_outputs(wildcards):
    """With grid.rnn.select: the retrain and transfer of each recurrent variant's selected seed (an input
    function, evaluated again once the select checkpoint jobs it waits for have finished; they are all in
    `rnn_outputs`, so they run in parallel)."""
    if not PARAMS.grid.rnn.select:
        return []
    return [path for dataset in RNN_DATASETS for method in RNN_METHODS
            for path in rnn_trained({"dataset": [dataset], "method": [method],
                                     "seed": [rnn_selected_seed(dataset, method)]})]


def rnn_trained(cells):
    """The retrain (and transfer) metrics of the recurrent `cells` (dataset, method, seed lists)."""
    return (expand(workflow_path(RETRAIN, "metrics.json"), **cells)
            + expand(workflow_path(TRANSFER_TEXT, "metrics.json"), target=RNN_TARGETS, **cells))


def rnn_selected_seed(dataset, method):
    """The seed whose select job scored the lowest validation perplexity, chosen as the tables choose it
    (pipeline/tables/selection.py). Called from input functions only, which `checkpoints.select.get` defers
    until every seed's select job of (dataset, method) has finished; Snakemake evaluates them again after."""
    # Imported here: pipeline.tables pulls in pandas and matplotlib, which no other parse of the workflow needs.
    from pipeline.tables.selection import SELECTION_SCORES, select_best, selection_scores

    for seed in SEEDS:
        checkpoints.select.get(dataset=dataset, method=method, seed=seed)
    score = SELECTION_SCORES["text"]
    best = select_best(selection_scores(Path("results"), dataset, [method], PARAMS.grid.seeds, score), score)
    if best is None:
        raise WorkflowError(f"select of {dataset}/{method}: no seed's metrics.json has a valid {score.metric}")
    return str(best[1])


def text_target_input(wildcards):
    """A text transfer reads the prepared corpus it trains on."""
    return workflow_path(DATA.format(dataset=wildcards.target), "manifest.json")


def table_files():
    """The tables the tables stage writes: one per dataset (and ImageNet when any cell is trained on it),
    per format."""
    names = [*DATASETS, *(["imagenet"] if PARAMS.grid.trains_cells_on_imagenet() else [])]
    return expand(workflow_path(TABLES, "{name}.{fmt}"), name=names, fmt=PARAMS.tables.formats)


def table_outputs():
    """`table_files()`, the CSV ones marked for `snakemake --report` (which renders CSV as a table)."""
    return [report(path, caption="../report/tables.rst", category="Tables") if path.endswith(".csv") else path
            for path in table_files()]
