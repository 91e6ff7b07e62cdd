"""A user's own search method registered through `plugins:` alone: its options are validated like the
package's (precise errors), `config --explain` and `bench` list it, and search + derive run it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from search_e2e import TINY_SEARCH, prepare_digits, search_and_derive_in_fresh_processes
from shipped_params import narrowed, write_yaml

from pipeline.config import explain, load_params
from pipeline.errors import ConfigError
from pipeline.methods import base as methods_base
from pipeline.methods.darts import Darts, DartsMethod
from pipeline.space.genotype import load_genotype
from pipeline.space.primitives import PRIMITIVES
from pipeline.stages.bench import bench_variants

MODULE = "my_lab_method"
# Copied, not imported by its test name: importing registers the method in this whole test process.
PLUGIN = Path(__file__).with_name("toy_method_plugin.py")
# The DARTS space offers PRIMITIVES on every edge (its definition), so an index names one op everywhere.
FAVOURITE = PRIMITIVES.index("sep_conv_3x3")


def _params(directory: Path, **options) -> Path:
    """params.yaml in `directory` naming the plugin module and one variant `fav` of its method."""
    shutil.copy(PLUGIN, directory / f"{MODULE}.py")
    raw = narrowed({"fav": {"algorithm": "toy_favourite", **options}})
    raw["plugins"] = [MODULE]
    raw["search"].update(TINY_SEARCH, epochs=1)
    return write_yaml(directory / "params.yaml", raw)


@pytest.fixture
def isolated_registry(tmp_path, monkeypatch):
    """Import the plugin in this process without leaving its method registered for the other tests."""
    monkeypatch.setattr(methods_base, "_REGISTRY", dict(methods_base._REGISTRY))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop(MODULE, None)


def test_the_plugin_methods_options_are_validated_listed_and_benched(isolated_registry):
    params = load_params(_params(isolated_registry, favourite=FAVOURITE))
    options = params.method("fav")
    assert type(options).__name__ == "FavouriteOptions"
    assert (options.favourite, options.share, options.space) == (FAVOURITE, 0.75, "darts")
    assert "search.methods.<name>.share = 0.75: Fixed weight of the favourite; the softmax of the logits " \
           "shares the rest." in explain()
    assert bench_variants()["toy_favourite"].algorithm == "toy_favourite"


@pytest.mark.parametrize(("options", "expected"), [
    ({"shar": 0.9}, "search.methods.fav.shar: unknown key (did you mean 'share'?); valid keys: ['algorithm', "
                    "'favourite', 'overrides', 'share', 'skipped_ops', 'space']"),
    ({"share": 0.5}, "search.methods.fav.share: Input should be greater than 0.5"),
    # The DARTS space offers 8 candidates per edge: indices 0..7.
    ({"favourite": 8}, "search.methods.fav.favourite: index 8 but the space offers 8 candidates per edge"),
    ({"algorithm": "toy_favorite"}, "search.methods.fav: unknown algorithm 'toy_favorite' (did you mean "
                                    "'toy_favourite'?)"),
])
def test_bad_options_of_the_plugin_method_name_the_key_and_expectation(isolated_registry, options, expected):
    with pytest.raises(ConfigError) as error:
        load_params(_params(isolated_registry, **options))
    assert expected in str(error.value)


def test_the_plugin_method_searches_and_derives_through_the_cli(tmp_path: Path):
    """Fresh interpreters (as Snakemake and DVC start) import the module named only under `plugins:`."""
    prepared = prepare_digits(tmp_path)
    params = _params(tmp_path, favourite=FAVOURITE)
    genotype_file = search_and_derive_in_fresh_processes(tmp_path, params, prepared, "fav")
    search_dir = tmp_path / "search"
    # The method's own state was searched: its logits are the architecture state saved by the search.
    state = json.loads((search_dir / "architecture.json").read_text())["method_state"]
    assert set(state) == {"alpha_normal", "alpha_reduce"}
    genotype = load_genotype(genotype_file)
    # share > 1/2 outweighs any softmax share of another candidate, so top-2 keeps only the favourite.
    ops = {op for cell in (genotype.normal, genotype.reduce) for pairs in cell for op, _ in pairs}
    assert ops == {"sep_conv_3x3"}


def test_an_options_class_belongs_to_one_method():
    with pytest.raises(TypeError, match=r"options must subclass pipeline\.config\.MethodBase"):
        methods_base.register_method("not_options", options=dict)(type("Plain", (Darts,), {}))  # type: ignore
    with pytest.raises(ValueError, match="DartsMethod already holds the options of 'darts'"):
        methods_base.register_method("darts_again", options=DartsMethod)(type("Again", (Darts,), {}))
    with pytest.raises(ValidationError, match="DartsMethod holds the options of 'darts', got 'sdarts'"):
        DartsMethod(algorithm="sdarts")
    assert not {"not_options", "darts_again"} & set(methods_base.list_methods())
