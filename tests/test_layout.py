"""pipeline/layout.py, the one home of the results layout and the params slices: the paths are the documented
layout, the slices are what the stages and rules computed before they moved there (written out here the
old way, so committed results, checkpoints and dvc.lock stay valid), and dvc.yaml agrees with it."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import layout
from pipeline.config import Params, load_params

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILES = [REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))]


@functools.cache
def _params(path: Path) -> Params:
    return load_params(path)


@functools.cache
def _dvc_stages() -> dict[str, Any]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_paths_are_the_documented_layout() -> None:
    # docs/architecture.md, "Results layout", written out by hand.
    results = Path("res")
    assert layout.search_dir(results, "cifar10", "darts_2nd", 3) == Path("res/search/cifar10/darts_2nd/seed3")
    assert layout.genotype_path(results, "svhn", "drnas", 0) == Path("res/genotypes/svhn/drnas/seed0.json")
    assert layout.retrain_dir(results, "digits", "pc_darts", 1) == Path("res/retrain/digits/pc_darts/seed1")
    assert layout.select_dir(results, "cifar100", "sdarts_rs", 2) == Path("res/select/cifar100/sdarts_rs/seed2")
    assert layout.transfer_dir(results, "cifar10", "darts_1st", 4) == Path(
        "res/transfer/imagenet/cifar10/darts_1st/seed4")
    assert layout.prepared_dir("digits") == Path("results/data/digits")
    assert layout.workflow_path(layout.SEARCH, "summary.json") == (
        "results/search/{dataset}/{method}/seed{seed}/summary.json")
    assert layout.dvc_path(layout.GENOTYPE) == "results/genotypes/${item.dataset}/${item.method}/seed${item.seed}.json"


# ------------------------------------------------------------------------ the slices, computed the old way


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def _old_rerun_slices(p: Params, dataset: str, method: str) -> dict[str, Any]:
    """rules/common.smk's *_slice functions before the move."""
    data, runtime = _dump(p.data), _dump(p.runtime)
    return {
        "prepare": {"prepare": {k: v for k, v in _dump(p.prepare).items() if k != "nb201_cifar10_split"},
                    "data": data},
        "search": {"search": {k: v for k, v in _dump(p.search).items() if k != "methods"},
                   "method": _dump(p.method(method)), "data": data, "runtime": runtime},
        "derive": {"derive": _dump(p.derive)},
        "retrain": {"retrain": _dump(p.retrain_settings(method, dataset)), "data": data, "runtime": runtime},
        "select": {"select": _dump(p.select_settings(method, dataset)), "data": data, "runtime": runtime},
        "transfer": {"transfer": _dump(p.transfer_settings(method)), "data": data, "runtime": runtime},
        "tables": {"tables": _dump(p.tables), "grid": _dump(p.grid),
                   "methods": {name: _dump(p.method(name)) for name in p.grid.methods + p.grid.nb201.methods},
                   "benchmark": _dump(p.benchmark)},
    }


@pytest.mark.parametrize("path", PARAMS_FILES, ids=lambda path: path.name)
def test_slices_are_those_the_stages_and_rules_computed_before(path: Path) -> None:
    p = _params(path)
    cells = {"normal": [["sep_conv_3x3", 0]]}
    for method in p.grid.methods:
        old_search = {"search": _dump(p.search_settings(method)), "analysis": _dump(p.search.analysis),
                      "method": {"name": method, **_dump(p.method(method))}, "runtime": _dump(p.runtime)}
        assert layout.search_slice(p, method) == old_search
        assert list(layout.search_slice(p, method)) == list(old_search)  # the provenance hash sees the order
        for dataset in p.grid.datasets:
            for stage, old in _old_rerun_slices(p, dataset, method).items():
                assert layout.rerun_slice(stage, p, dataset, method) == old, (path.name, stage, method, dataset)
            retrain = p.retrain_settings(method, dataset)
            old_retrain = {"retrain": _dump(retrain), "runtime": _dump(p.runtime), "genotype": cells,
                           "dataset": dataset, "method": method, "seed": 3, "world_size": 2}
            new = layout.training_slice(p, "retrain", retrain, cells, dataset=dataset, method=method, seed=3,
                                        world_size=2)
            assert list(new.items()) == list(old_retrain.items())
        transfer = p.transfer_settings(method)
        old_transfer = {"transfer": _dump(transfer), "runtime": _dump(p.runtime), "genotype": cells,
                        "dataset": "imagenet", "num_classes": 1000, "searched_on": "cifar10", "method": method,
                        "seed": 0, "world_size": 1}
        new = layout.training_slice(p, "transfer", transfer, cells, dataset="imagenet", num_classes=1000,
                                    searched_on="cifar10", method=method, seed=0, world_size=1)
        assert list(new.items()) == list(old_transfer.items())


# ------------------------------------------------------------------------------------------- dvc.yaml
# The layout templates each cell stage writes under and reads from.
_WRITES = {"search": layout.SEARCH, "derive": layout.GENOTYPE, "retrain": layout.RETRAIN,
           "transfer": layout.TRANSFER}
_READS = {"search": {layout.DATA}, "derive": {layout.SEARCH}, "retrain": {layout.GENOTYPE, layout.DATA},
          "transfer": {layout.GENOTYPE}}


def _paths(entries: list[Any]) -> list[str]:
    return [next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries]


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def test_dvc_params_are_the_layouts() -> None:
    stages = _dvc_stages()
    for name, stage in stages.items():
        home = name if name in layout.DVC_PARAMS else name.removesuffix("_imagenet").removesuffix("_nb201")
        assert stage["params"] == layout.dvc_params(home), name


# The NAS-Bench-201 sub-grid's stages: the same bodies, reading its own prepared data.
_NB201_READS = {stage: {layout.DATA_NB201 if read == layout.DATA else read for read in reads}
                for stage, reads in _READS.items()}


@pytest.mark.parametrize("stage", [*sorted(_WRITES), "search_nb201", "derive_nb201", "retrain_nb201"])
def test_dvc_paths_are_the_layouts(stage: str) -> None:
    spec = _dvc_stages()[stage]
    home = stage.removesuffix("_nb201")
    out_dir = layout.dvc_path(_WRITES[home])
    for kind in ("outs", "metrics", "plots"):
        for path in _paths(spec.get(kind, [])):
            assert _under(path, out_dir), f"{stage}.{kind}: {path} is not under the layout's {out_dir}"
    assert f"--out {out_dir}" in " ".join(spec["cmd"].split())
    read = {dep for dep in spec["deps"] if dep.startswith(layout.RESULTS + "/")}
    templates = {layout.dvc_path(template) for template in (_NB201_READS if home != stage else _READS)[home]}
    assert {next(t for t in templates if _under(dep, t)) for dep in read} == templates, (stage, read)


def test_dvc_prepare_and_tables_paths_are_the_layouts() -> None:
    stages = _dvc_stages()
    assert _paths(stages["prepare"]["outs"]) == [layout.dvc_path(layout.DATA)]
    assert _paths(stages["prepare_nb201"]["outs"]) == [layout.dvc_path(layout.DATA_NB201)]
    assert f"--out {layout.dvc_path(layout.DATA_NB201)}" in stages["prepare_nb201"]["cmd"]
    for dataset in ("imagenet_demo", "imagenet"):
        assert _paths(stages[f"prepare_{dataset}"]["outs"]) == [str(layout.prepared_dir(dataset))]
    top = {f"{layout.RESULTS}/{template.split('/')[0]}" for template in _WRITES.values()}
    assert {dep for dep in stages["tables"]["deps"] if dep.startswith(layout.RESULTS)} == top
    assert _paths(stages["tables"]["outs"]) == [f"{layout.RESULTS}/{name}" for name in (layout.TABLES, layout.FIGURES)]


# Values of a rerun slice that its stage does not read although Snakemake's slice holds them (it takes
# whole sections): prepare uses no DataLoader; retrain and transfer read only their own data root.
NOT_READ = {"prepare": {"data.num_workers"}, "retrain": {"data.imagenet_root"},
            "transfer": {"data.root", "data.download"}}
# Where a rerun slice's section lives in params.yaml.
_SECTION = {"method": "search.methods.{method}", "methods": "search.methods"}


def _leaves(tree: Any, prefix: str) -> set[str]:
    if isinstance(tree, dict) and tree:
        return set().union(*(_leaves(value, f"{prefix}.{key}") for key, value in tree.items()))
    return {prefix}


def test_dvc_stages_rerun_on_everything_the_rerun_slice_holds() -> None:
    """Every value a Snakemake rule reruns on is a DVC param of the same stage (or of one of the prepare
    stages, which split prepare by dataset), but for what the stage does not read at all."""
    p = _params(REPO / "params.yaml")
    method, dataset = p.grid.methods[0], p.grid.datasets[0]
    for stage in ("prepare", "search", "derive", "retrain", "transfer", "tables"):
        names = [name for name in layout.DVC_PARAMS if name.startswith(stage)]
        keys = [key.replace("${item.method}", method) for name in names for key in layout.dvc_params(name)]
        held = set()
        for section, tree in layout.rerun_slice(stage, p, dataset, method).items():
            held |= _leaves(tree, _SECTION.get(section, section).format(method=method))
        missing = {leaf for leaf in held if not any(_under(leaf.replace(".", "/"), key.replace(".", "/"))
                                                      for key in keys)}
        assert missing <= NOT_READ.get(stage, set()), (stage, sorted(missing))


def test_only_the_nb201_prepare_reruns_on_the_benchmark_split() -> None:
    """prepare.nb201_cifar10_split is read by the NB201 sub-grid's prepare alone (its --subgrid): a rerun
    value and DVC param of prepare_nb201, never of the main grid's prepare."""
    p = _params(REPO / "params.yaml")
    key = "prepare.nb201_cifar10_split"
    assert "nb201_cifar10_split" in layout.rerun_slice("prepare_nb201", p, "cifar10")["prepare"]
    assert "nb201_cifar10_split" not in layout.rerun_slice("prepare", p, "cifar10")["prepare"]
    assert key in layout.dvc_params("prepare_nb201") and key not in layout.dvc_params("prepare")
    stages = _dvc_stages()
    assert "--subgrid nb201" in stages["prepare_nb201"]["cmd"] and "--subgrid" not in stages["prepare"]["cmd"]


def test_rules_write_no_results_path_of_their_own() -> None:
    for rule in (REPO / "rules").glob("*.smk"):
        literal = re.findall(r"[\"']results/[^\"']*[\"']", rule.read_text())
        assert not literal, f"{rule.name}: {literal} belongs in pipeline/layout.py"



# ------------------------------------------------------------------------------- the recurrent sub-grid
# dvc.yaml's grid.rnn stages: (stage, the layout template it writes, those it reads, the rerun slice whose
# values it must list as params). The prepare stages read no results; the tables read everything.
_RNN_STAGES = {
    "search_rnn": (layout.SEARCH, {layout.DATA}, "search"),
    "derive_rnn": (layout.GENOTYPE, {layout.SEARCH}, "derive"),
    "retrain_rnn": (layout.RETRAIN, {layout.GENOTYPE, layout.DATA}, "retrain"),
    "transfer_rnn": (layout.TRANSFER_TEXT, {layout.GENOTYPE, layout.DATA.format(dataset="{target}")}, "transfer_text"),
}


def test_paths_of_the_recurrent_sub_grid_are_the_documented_layout() -> None:
    assert layout.text_transfer_dir(Path("res"), "wikitext2", "ptb", "darts_rnn_2nd", 1) == Path(
        "res/transfer/wikitext2/ptb/darts_rnn_2nd/seed1")
    assert layout.dvc_path(layout.TRANSFER_TEXT) == (
        "results/transfer/${item.target}/${item.dataset}/${item.method}/seed${item.seed}")


@pytest.mark.parametrize("stage", sorted(_RNN_STAGES))
def test_dvc_rnn_stages_write_and_read_the_layouts_paths(stage: str) -> None:
    spec = _dvc_stages()[stage]
    writes, reads, _ = _RNN_STAGES[stage]
    out_dir = layout.dvc_path(writes)
    for kind in ("outs", "metrics", "plots"):
        for path in _paths(spec.get(kind, [])):
            assert _under(path, out_dir), f"{stage}.{kind}: {path} is not under the layout's {out_dir}"
    assert f"--out {out_dir}" in " ".join(spec["cmd"].split())
    read = {dep for dep in spec["deps"] if dep.startswith(layout.RESULTS + "/")}
    templates = {layout.dvc_path(template) for template in reads}
    assert {next(t for t in templates if _under(dep, t)) for dep in read} == templates, (stage, read)
    assert spec["matrix"]["method"] == "${grid.rnn.methods}" and spec["matrix"]["dataset"] == "${grid.rnn.datasets}"


def test_dvc_prepares_each_rnn_corpus_and_the_transfer_target() -> None:
    stages = _dvc_stages()
    assert stages["prepare_text"]["matrix"] == {"dataset": "${grid.rnn.datasets}"}
    assert stages["prepare_text_target"]["matrix"] == {"dataset": ["${grid.rnn.transfer_to}"]}
    assert stages["transfer_rnn"]["matrix"]["target"] == ["${grid.rnn.transfer_to}"]
    for name in ("prepare_text", "prepare_text_target"):
        assert _paths(stages[name]["outs"]) == [layout.dvc_path(layout.DATA)]


@pytest.mark.parametrize("stage", sorted(_RNN_STAGES))
def test_dvc_rnn_stages_rerun_on_everything_the_rerun_slice_holds(stage: str) -> None:
    """As for the main grid: each value the Snakemake job of an rnn variant reruns on is a DVC param of the
    stage, but for `data` (a text stage reads its prepared corpus, a dependency, not data.root)."""
    p = _params(REPO / "params.yaml")
    method, dataset = p.grid.rnn.methods[0], p.grid.rnn.datasets[0]
    keys = [key.replace("${item.method}", method) for key in layout.dvc_params(stage)]
    held = set()
    for section, tree in layout.rerun_slice(_RNN_STAGES[stage][2], p, dataset, method).items():
        held |= _leaves(tree, _SECTION.get(section, section).format(method=method))
    missing = {leaf for leaf in held if not any(_under(leaf.replace(".", "/"), key.replace(".", "/")) for key in keys)}
    assert {leaf.split(".")[0] for leaf in missing} <= {"data"}, (stage, sorted(missing))


def test_rnn_provenance_slices_hold_the_language_model_settings() -> None:
    p = _params(REPO / "params.yaml")
    method = p.grid.rnn.methods[0]
    assert layout.search_slice(p, method)["language_model"] == {"search": _dump(p.language_model.search)}
    assert "language_model" not in layout.search_slice(p, p.grid.methods[0])
    cells = {"recurrent": [["tanh", 0]], "concat": [1]}
    for stage in ("retrain", "transfer"):
        new = layout.lm_training_slice(p, stage, p.lm_settings(stage, method), cells, dataset="ptb", method=method,
                                       seed=2)
        assert new == {"language_model": {stage: _dump(p.lm_settings(stage, method))}, "runtime": _dump(p.runtime),
                       "genotype": cells, "dataset": "ptb", "method": method, "seed": 2}
    assert layout.rerun_slice("retrain", p, "text_demo", method)["language_model"] == {
        "retrain": _dump(p.lm_settings("retrain", method))}
