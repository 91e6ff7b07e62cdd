"""The numbers the papers report, loaded from package data (pipeline/reference/paper_results.yaml).

Loaded through importlib.resources so an installed package finds the file too; the YAML stays the one
source of truth (design.md) and nothing here repeats a number.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

_PACKAGE_FILE = ("pipeline", "reference/paper_results.yaml")
# The sections holding test errors per method after retraining on a searched dataset.
_ERROR_SECTIONS = ("cifar10", "cifar100")


@functools.cache
def _load() -> dict[str, Any]:
    package, name = _PACKAGE_FILE
    return yaml.safe_load(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def paper_results() -> dict[str, Any]:
    """Every section of the file (a copy), for checks that walk all of it rather than one table."""
    return copy.deepcopy(_load())


def paper_errors(dataset: str) -> dict[str, dict[str, Any]]:
    """Per method: the paper's test error, std, params and search cost on `dataset` (empty when none)."""
    return dict(_load()[dataset]) if dataset in _ERROR_SECTIONS else {}


def paper_imagenet() -> dict[str, dict[str, Any]]:
    """Per method: ImageNet mobile-setting top-1 / top-5, params, mult-adds, search cost, searched on."""
    return dict(_load()["imagenet_mobile"])


def paper_data_sampling() -> list[dict[str, Any]]:
    """DATA Table 5 on CIFAR-10: test error and params per sampling times M."""
    return list(_load()["data_sampling_times_cifar10"])


def paper_drnas_partial(dataset: str) -> tuple[str, list[dict[str, Any]]]:
    """DrNAS Table 1 (NAS-Bench-201): accuracy and memory per K, for `dataset` or else CIFAR-10.

    Returns the dataset the numbers are for, so the table can label them honestly.
    """
    section = _load()["drnas_partial_channels_nb201"]
    source = dataset if dataset in section else "cifar10"
    return source, list(section[source])


def paper_simplified_spaces() -> dict[str, dict[str, dict[str, Any]]]:
    """SDARTS Table 4 / DrNAS Table 6: dataset -> method -> {space: test error %, source}."""
    return dict(_load()["simplified_spaces"])


def paper_simplified_param_free() -> dict[str, dict[str, Any]]:
    """SDARTS Table 5 on CIFAR-10: method -> {space: % parameter-free ops in the normal cell, source}; the
    numbers the paper's text states, then those computed from the authors' released cells."""
    computed = dict(_load()["simplified_spaces_parameter_free_released_cells_cifar10"])
    stated = dict(_load()["simplified_spaces_parameter_free_cifar10"])
    return computed | stated


# The sections holding perplexities of recurrent cells trained on a corpus.
_PERPLEXITY_SECTIONS = ("ptb", "wikitext2")


def paper_perplexity(corpus: str) -> dict[str, dict[str, Any]]:
    """Per method: the paper's valid / test perplexity, params (M) and search cost on `corpus` (empty when
    none), then the DARTS authors' released model on it where their README reports one."""
    if corpus not in _PERPLEXITY_SECTIONS:
        return {}
    released = _load()["released_darts_models"].get(corpus)
    return dict(_load()[corpus]) | ({"darts_v2_released": released} if released else {})
# NAS-Bench-201 comparison tables: section of the file -> how the table names it.
NB201_TABLES = {"nas_bench_201_drnas": "DrNAS Table 4", "nas_bench_201_ddsas": "DDSAS Table 4"}
# The entry of the benchmark's best architecture in those sections.
NB201_OPTIMAL = "optimal"


def paper_nb201() -> dict[str, dict[str, dict[str, Any]]]:
    """DrNAS Table 4 and DDSAS Table 4 (NAS-Bench-201): table label -> method -> {dataset: {valid, valid_std,
    test, test_std}, source}; the `optimal` entry is the benchmark's best architecture."""
    return {label: dict(_load()[section]) for section, label in NB201_TABLES.items()}


def paper_drnas_lambda() -> list[dict[str, Any]]:
    """DrNAS Table 5: CIFAR-10 test accuracy on NAS-Bench-201 per anchor strength lambda."""
    return list(_load()["drnas_anchor_lambda_nb201"])
