"""The one home of two facts every engine and stage shares: where each stage's files live under `results/`
(docs/architecture.md, "Results layout") and which params.yaml values each stage's results depend on.

The stages, `pipeline/tables`, the Snakemake rules and the tests import it; `dvc.yaml` is checked against it
by tests/test_layout.py. It imports neither torch nor the config schema, so the Snakefile loads it cheaply.

Three kinds of params slice, each kept here because each has a different job:
- the provenance slice a stage hashes into its records and compares when resuming (`search_slice`,
  `training_slice`): the effective settings of one run, so an unrelated edit never invalidates a checkpoint;
- the rerun slice of a Snakemake rule (`rerun_slice`): the values whose change reruns a job;
- the `params:` keys of a DVC stage (`DVC_PARAMS`): the same, as far as DVC's key lists can say it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config import Params

RESULTS = "results"

# ------------------------------------------------------------------------------------------ results layout
# Templates relative to `results/`; their {names} are the Snakemake wildcards and DVC's matrix items.
DATA = "data/{dataset}"
# The NAS-Bench-201 sub-grid's prepared data live apart: NB201 has its own splits (cifar10-valid), and a
# dataset of both grids then has one prepare job (one DVC stage) per grid.
DATA_NB201 = "data/nb201/{dataset}"
NB201 = "nb201"  # that sub-grid's name (`SearchSpace.subgrid`, prepare's --subgrid)
SEARCH = "search/{dataset}/{method}/seed{seed}"
GENOTYPE = "genotypes/{dataset}/{method}/seed{seed}.json"
RETRAIN = "retrain/{dataset}/{method}/seed{seed}"
SELECT = "select/{dataset}/{method}/seed{seed}"
# The genotype's search dataset stays in the path, so genotypes from different datasets never collide.
TRANSFER = "transfer/imagenet/{dataset}/{method}/seed{seed}"
# A recurrent cell searched on {dataset} (PTB) trained on the corpus grid.rnn.transfer_to ({target}).
TRANSFER_TEXT = "transfer/{target}/{dataset}/{method}/seed{seed}"
TABLES = "tables"
FIGURES = "figures"


def _cell(template: str, results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / template.format(dataset=dataset, method=method, seed=seed)


def prepared_dir(dataset: str, results: Path = Path(RESULTS), *, subgrid: str | None = None) -> Path:
    """prepare's output directory of `dataset` for the grid `subgrid` (`SearchSpace.subgrid` of the space
    searched; None: the main grid), the default --prepared of the training stages."""
    return results / (DATA_NB201 if subgrid == NB201 else DATA).format(dataset=dataset)


def search_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return _cell(SEARCH, results, dataset, method, seed)


def genotype_path(results: Path, dataset: str, method: str, seed: int) -> Path:
    return _cell(GENOTYPE, results, dataset, method, seed)


def retrain_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return _cell(RETRAIN, results, dataset, method, seed)


def select_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return _cell(SELECT, results, dataset, method, seed)


def transfer_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return _cell(TRANSFER, results, dataset, method, seed)


def text_transfer_dir(results: Path, target: str, dataset: str, method: str, seed: int) -> Path:
    return results / TRANSFER_TEXT.format(target=target, dataset=dataset, method=method, seed=seed)


def workflow_path(template: str, file: str = "") -> str:
    """A Snakemake pattern: `results/<template>[/file]`, the template's {names} left as wildcards."""
    return "/".join(part for part in (RESULTS, template, file) if part)


def dvc_path(template: str, file: str = "") -> str:
    """The same path as dvc.yaml writes it, each {name} a `${item.name}` of the stage's matrix."""
    return workflow_path(template, file).format(dataset="${item.dataset}", method="${item.method}",
                                                seed="${item.seed}", target="${item.target}")


# ------------------------------------------------------------------------------------- provenance slices


def is_text_variant(params: Params, method: str) -> bool:
    """Whether variant `method` searches a text space (the recurrent one): its stages train language models."""
    # Imported by name, as pipeline/config.py reaches the registry: which slice applies never changes a
    # result, so the spaces are no DVC dependency of the stages that read the layout (test_dvc.py).
    get_space = importlib.import_module("pipeline.space.base").get_space
    return get_space(params.method(method).space).data_kind == "text"


def search_slice(params: Params, method: str) -> dict[str, Any]:
    """Exactly what a search of variant `method` reads: its provenance hash and resume check use it (a text
    search also reads language_model.search)."""
    text = {"language_model": {"search": params.language_model.search.model_dump(mode="json")}}
    return {
        "search": params.search_settings(method).model_dump(mode="json"),
        "analysis": params.search.analysis.model_dump(mode="json"),
        "method": {"name": method, **params.method(method).model_dump(mode="json")},
        "runtime": params.runtime.model_dump(mode="json"),
        **(text if is_text_variant(params, method) else {}),
    }


def training_slice(params: Params, stage: str, settings: Any, cells: dict[str, Any], *, dataset: str,
                   method: str, seed: int, world_size: int, **target: Any) -> dict[str, Any]:
    """Exactly what a retrain, select or transfer training depends on: its provenance hash and resume check
    use it. `settings` are the stage's effective settings of this variant (the overrides applied), `cells`
    the genotype without its provenance, `target` what a transfer adds (num_classes, searched_on).

    The world size is part of it because the data sharding and the per-process random streams depend on
    it: resuming on a different number of processes would continue another run than the one started.
    """
    # select trains with the retrain settings, shortened (Params.select_settings): its slice says "retrain".
    section = "transfer" if stage == "transfer" else "retrain"
    return {section: settings.model_dump(mode="json"), "runtime": params.runtime.model_dump(mode="json"),
            "genotype": cells, "dataset": dataset, **target, "method": method, "seed": seed,
            "world_size": world_size}


def lm_training_slice(params: Params, stage: str, settings: Any, cells: dict[str, Any], *, dataset: str,
                      method: str, seed: int) -> dict[str, Any]:
    """What a language-model retrain or transfer depends on (provenance and resume key): `settings` its
    effective language_model.<stage> of this variant, `cells` the genotype without provenance, `dataset`
    the corpus it trains on."""
    return {"language_model": {stage: settings.model_dump(mode="json")},
            "runtime": params.runtime.model_dump(mode="json"), "genotype": cells, "dataset": dataset,
            "method": method, "seed": seed}


# ------------------------------------------------------------------------------- Snakemake rerun slices
# Snakemake reruns a job (and everything downstream) when its `params:` change, so each rule's params are
# the params.yaml values its stage reads: a search sees the shared search keys and its own method entry,
# never the other methods' entries; resources and tracking are not inputs of any result.


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


# The NAS-Bench-201 split file (prepare.<key>): read only by the NB201 sub-grid's prepare, so setting it
# reruns that grid alone.
NB201_SPLIT_KEY = "nb201_cifar10_split"


def _prepare(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
    prepare = {key: value for key, value in _dump(params.prepare).items() if key != NB201_SPLIT_KEY}
    return {"prepare": prepare, "data": _dump(params.data)}


def _prepare_nb201(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
    return {"prepare": _dump(params.prepare), "data": _dump(params.data)}


def _search(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
    assert method is not None
    text = {"language_model": {"search": _dump(params.language_model.search)}}
    return {"search": {k: v for k, v in _dump(params.search).items() if k != "methods"},
            "method": _dump(params.method(method)), "data": _dump(params.data), "runtime": _dump(params.runtime),
            **(text if is_text_variant(params, method) else {})}


def _derive(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
    # The genotype comes with the search's summary; the method's options shaped it there, not here.
    return {"derive": _dump(params.derive)}


def _trained(section: str, settings_of: Callable[[Params, str, str], Any]) -> Callable[..., dict[str, Any]]:
    """The slice of a training stage: its effective settings of this variant (other variants' overrides do
    not matter), data and runtime."""
    def slice_of(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
        assert dataset is not None and method is not None
        return {section: _dump(settings_of(params, method, dataset)), "data": _dump(params.data),
                "runtime": _dump(params.runtime)}
    return slice_of


def _lm_trained(stage: str) -> Callable[..., dict[str, Any]]:
    """A language-model training job's slice: its language_model.<stage> settings of this variant."""
    def slice_of(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
        assert method is not None
        return {"language_model": {stage: _dump(params.lm_settings(stage, method))}, "data": _dump(params.data),
                "runtime": _dump(params.runtime)}
    return slice_of


def _image_or_text(stage: str, image_settings: Callable[[Params, str, str], Any]) -> Callable[..., dict[str, Any]]:
    """The slice of a rule that trains image and text genotypes alike (retrain, select); each reads its own
    section (`image_settings`, or language_model.<stage>)."""
    def slice_of(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
        assert method is not None
        if is_text_variant(params, method):
            return _lm_trained(stage)(params, dataset, method)
        return _trained(stage, image_settings)(params, dataset, method)
    return slice_of


def _tables(params: Params, dataset: str | None, method: str | None) -> dict[str, Any]:
    names = [*params.grid.methods, *params.grid.nb201.methods]
    return {"tables": _dump(params.tables), "grid": _dump(params.grid),
            "methods": {name: _dump(params.method(name)) for name in names},
            "benchmark": _dump(params.benchmark)}


_RERUN_SLICES: dict[str, Callable[[Params, str | None, str | None], dict[str, Any]]] = {
    "prepare": _prepare,
    "prepare_nb201": _prepare_nb201,
    "search": _search,
    "derive": _derive,
    "retrain": _image_or_text("retrain", lambda p, method, dataset: p.retrain_settings(method, dataset)),
    "select": _image_or_text("select", lambda p, method, dataset: p.select_settings(method, dataset)),
    "transfer": _trained("transfer", lambda p, method, dataset: p.transfer_settings(method)),
    "transfer_text": _lm_trained("transfer"),
    "tables": _tables,
}


def rerun_slice(stage: str, params: Params, dataset: str | None = None, method: str | None = None) -> dict[str, Any]:
    """The params of the Snakemake rule `stage` for one job (its `dataset` and `method` wildcards)."""
    return _RERUN_SLICES[stage](params, dataset, method)


# ------------------------------------------------------------------------------------ DVC params: keys
# The same reads as DVC key lists ({method}: the stage's ${item.method}). Where DVC cannot say it, it reads
# more, never less: search lists the shared search keys one by one (from the schema; DVC cannot exclude the
# other variants' entries), retrain and transfer depend on their whole section (every variant's
# method_overrides). Finer than the rerun slices where a key list can be: prepare does not read
# data.num_workers, and the demo ImageNet tree only its own keys. The DVC pipeline has no select stage.
SEARCH_SHARED = "{search_shared}"  # stands for search.<key> of every shared search key
_PREPARE_SPLITS = ("prepare.test_fraction", "prepare.split_seed", "prepare.search_portion", "prepare.imagenet_demo")
# A text corpus: the demo's vocabulary, or PTB / WikiText-2 copied from data.root.
_PREPARE_TEXT = ("prepare.text_demo", "data.root")
DVC_PARAMS: dict[str, tuple[str, ...]] = {
    "prepare": (*_PREPARE_SPLITS, "prepare.text_demo", "data.root", "data.download"),
    "prepare_nb201": (*_PREPARE_SPLITS, "prepare.text_demo", f"prepare.{NB201_SPLIT_KEY}", "data.root",
                      "data.download"),
    "prepare_imagenet_demo": _PREPARE_SPLITS,
    "prepare_imagenet": ("prepare.split_seed", "prepare.imagenet_search", "data.imagenet_root"),
    "search": (SEARCH_SHARED, "search.methods.{method}",
               "data.root", "data.imagenet_root", "data.download", "data.num_workers", "runtime"),
    "derive": ("derive",),
    "retrain": ("retrain", "data.root", "data.download", "data.num_workers", "runtime"),
    "transfer": ("transfer", "data.imagenet_root", "data.num_workers", "runtime"),
    "tables": ("tables", "grid", "search.methods", "benchmark"),
    # The recurrent sub-grid (grid.rnn): the corpora, and the same stage bodies with language_model keys.
    "prepare_text": _PREPARE_TEXT,
    "prepare_text_target": _PREPARE_TEXT,
    "search_rnn": (SEARCH_SHARED, "search.methods.{method}", "language_model.search", "runtime"),
    "derive_rnn": ("derive",),
    "retrain_rnn": ("language_model.retrain", "runtime"),
    "transfer_rnn": ("language_model.transfer", "runtime"),
}


def dvc_params(stage: str) -> list[str]:
    """The `params:` list of DVC stage `stage` as dvc.yaml writes it."""
    from pipeline.config import SearchConfig  # the schema imports this module

    shared = [f"search.{key}" for key in SearchConfig.model_fields if key != "methods"]
    keys: list[str] = []
    for key in DVC_PARAMS[stage]:
        keys += shared if key == SEARCH_SHARED else [key.format(method="${item.method}")]
    return keys
