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
TRANSFER = PARAMS.grid.transfer
# Variants searched directly on ImageNet; their genotypes are evaluated by the transfer stage only.
IMAGENET_METHODS = list(PARAMS.grid.imagenet_methods)
# The demo's ImageNet stand-in is written by `prepare --dataset imagenet_demo`; any other
# data.imagenet_root is a real ImageFolder tree the user provides.
DEMO_IMAGENET = Path(PARAMS.data.imagenet_root) == Path("results/data/imagenet_demo")


wildcard_constraints:
    dataset="|".join([*DATASETS, "imagenet_demo", *(["imagenet"] if IMAGENET_METHODS else [])]),
    method="|".join(dict.fromkeys([*METHODS, *IMAGENET_METHODS])),
    seed=r"\d+",


# ------------------------------------------------------------------------------------------ params slices
# Snakemake reruns a job (and everything downstream) when its `params:` change, so each rule's params are
# exactly the params.yaml values its stage reads: a search sees the shared search keys and its own method
# entry, never the other methods' entries; resources and tracking are not inputs of any result.


def _dump(model):
    return model.model_dump(mode="json")


def _search_shared():
    return {k: v for k, v in _dump(PARAMS.search).items() if k != "methods"}


def prepare_slice(wildcards):
    return {"prepare": _dump(PARAMS.prepare), "data": _dump(PARAMS.data)}


def search_slice(wildcards):
    return {
        "search": _search_shared(),
        "method": _dump(PARAMS.method(wildcards.method)),
        "data": _dump(PARAMS.data),
        "runtime": _dump(PARAMS.runtime),
    }


def derive_slice(wildcards):
    # The genotype comes with the search's summary; the method's options shaped it there, not here.
    return {"derive": _dump(PARAMS.derive)}


def retrain_slice(wildcards):
    # The effective settings of this method: retrain.method_overrides of other methods do not matter.
    return {
        "retrain": _dump(PARAMS.retrain_settings(wildcards.method, wildcards.dataset)),
        "data": _dump(PARAMS.data),
        "runtime": _dump(PARAMS.runtime),
    }


def select_slice(wildcards):
    # The short retrain's effective settings on this dataset, as for retrain.
    return {
        "select": _dump(PARAMS.select_settings(wildcards.method, wildcards.dataset)),
        "data": _dump(PARAMS.data),
        "runtime": _dump(PARAMS.runtime),
    }


def transfer_slice(wildcards):
    # The effective settings of this method, as for retrain.
    return {
        "transfer": _dump(PARAMS.transfer_settings(wildcards.method)),
        "data": _dump(PARAMS.data),
        "runtime": _dump(PARAMS.runtime),
    }


def tables_slice(wildcards):
    return {
        "tables": _dump(PARAMS.tables),
        "grid": _dump(PARAMS.grid),
        "methods": {name: _dump(PARAMS.method(name)) for name in METHODS},
    }


# -------------------------------------------------------------------------------------------- resources


def res(stage):
    """The scheduler request of a stage from params.yaml `resources.<stage>` (gpu, mem_mb, runtime, cpus)."""
    return getattr(PARAMS.resources, stage)


def launcher(stage):
    """`torchrun` (one process per GPU, DDP) when a stage asks for several GPUs, else plain python.

    Retrain and transfer carry it in `params:`: the batch size is global, but the GPU count still changes
    the data sharding and random streams, hence the results, and rightly reruns them. Every rule's shell starts with `exec`: SLURM signals all processes
    of a job step before its time limit, and only when the stage is the process Snakemake waits for can
    it write its checkpoint and exit before the step is torn down.
    """
    gpus = res(stage).gpu
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m pipeline"
    return "python -m pipeline"



# -------------------------------------------------------------------------------------- input functions


def imagenet_input(wildcards):
    """Transfer needs prepare's demo tree only when data.imagenet_root points at it."""
    return ["results/data/imagenet_demo/manifest.json"] if DEMO_IMAGENET else []


def prepare_input(wildcards):
    """Sampling ImageNet for a direct search lists the tree at data.imagenet_root (maybe the demo's)."""
    return imagenet_input(wildcards) if wildcards.dataset == "imagenet" else []


def grid_outputs():
    """Every final file of the grid: what the tables read and what `rule all` asks for.

    Searches on a grid dataset are retrained on it (and transferred when grid.transfer is true); direct
    ImageNet searches are evaluated on ImageNet only, by the transfer stage.
    """
    pattern = "{dataset}/{method}/seed{seed}"
    cells = expand(pattern, dataset=DATASETS, method=METHODS, seed=SEEDS)
    direct = expand(pattern, dataset=["imagenet"], method=IMAGENET_METHODS, seed=SEEDS)
    outputs = [f"results/search/{cell}/summary.json" for cell in cells + direct]
    outputs += [f"results/genotypes/{cell}.json" for cell in cells + direct]
    outputs += [f"results/retrain/{cell}/metrics.json" for cell in cells]
    outputs += [f"results/select/{cell}/metrics.json" for cell in cells] if PARAMS.grid.select else []
    transferred = (cells if TRANSFER else []) + direct
    outputs += [f"results/transfer/imagenet/{cell}/metrics.json" for cell in transferred]
    return outputs


def table_files():
    """The tables the tables stage writes: one per dataset (and ImageNet when any cell is trained on it),
    per format."""
    names = [*DATASETS, *(["imagenet"] if TRANSFER or IMAGENET_METHODS else [])]
    return expand("results/tables/{name}.{fmt}", name=names, fmt=PARAMS.tables.formats)


def table_outputs():
    """`table_files()`, the CSV ones marked for `snakemake --report` (which renders CSV as a table)."""
    return [report(path, caption="../report/tables.rst", category="Tables") if path.endswith(".csv") else path
            for path in table_files()]
