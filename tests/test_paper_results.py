"""The papers' numbers file: every row sourced, every number in its unit's range, no silent duplicates.

The oracles are definitions, never the transcribed numbers: a percentage lies in [0, 100], the ImageNet
mobile setting means fewer than 600M mult-adds, top-5 error is below top-1 error, DATA's gap is the
distance between the child's error and the supernet's, and no derived cell beats the NAS-Bench-201
optimum of its own table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from pipeline.tables.reference import paper_results

# Plausible range per field (inclusive), by the field's unit; a new field must be given one here.
_PERCENT = (0.0, 100.0)
_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("error", "top1", "top5", "accuracy", "valid", "test", "search", "child", "gap"), _PERCENT),
    **dict.fromkeys(("s1", "s2", "s3", "s4"), _PERCENT),  # error %, parameter-free %, or an eigenvalue
    **dict.fromkeys(("std", "valid_std", "test_std"), (0.0, 20.0)),  # a spread, in the unit of its mean
    "params": (0.5, 40.0),                 # millions: the papers' networks hold 2-33M
    "mult_adds": (0.0, 599.999),           # millions: mobile setting, 'under 600M' (DATA section 4.1)
    "search_cost": (0.01, 10.0),           # GPU-days of one search
    "search_cost_cpu_days": (1.0, 1e5),
    "search_hours": (0.1, 24.0),
    "memory_mb": (100.0, 80_000.0),
    "M": (1, 9),                           # DATA's sampling times
    "K": (1, 8),                           # DrNAS' partial-channel fraction 1/K
    "lambda": (1e-6, 1.0),                 # DrNAS' anchor strength
}
_TEXT_FIELDS = {"source", "searched_on", "identical_in_paper"}
_WORD_VALUES = {"K": {"progressive"}}
_CITATIONS = {"source", "identical_in_paper"}  # say where a row comes from, not what it measures


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rows(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping that holds a number or a source, with its dotted path; groups above are walked."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _rows(item, f"{path}[{index}]")
    elif isinstance(node, Mapping):
        if "source" in node or any(_is_number(value) for value in node.values()):
            yield path, dict(node)
        else:
            for key, value in node.items():
                yield from _rows(value, f"{path}.{key}")


def _fields(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path inside the row, field name, value) for every leaf, nested dataset mappings included."""
    for key, value in row.items():
        if isinstance(value, Mapping):
            yield from _fields(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", key, value


def _all_rows() -> list[tuple[str, dict[str, Any]]]:
    return [row for section, body in paper_results().items() for row in _rows(body, section)]


def test_every_section_has_rows_and_every_row_names_its_source() -> None:
    sections = paper_results()
    for section, body in sections.items():
        assert list(_rows(body, section)), f"section {section!r}: no rows found (an unknown layout?)"
    for path, row in _all_rows():
        source = row.get("source")
        assert isinstance(source, str) and source.strip(), f"{path}: no `source`"


def test_every_number_lies_in_the_plausible_range_of_its_unit() -> None:
    for path, row in _all_rows():
        for where, field, value in _fields(row):
            if field in _TEXT_FIELDS:
                assert isinstance(value, str), f"{path}.{where}: expected text, got {value!r}"
            elif field == "verified":
                assert value is False, f"{path}.{where}: only `verified: false` is meaningful"
            elif isinstance(value, str):
                assert value in _WORD_VALUES.get(field, set()), f"{path}.{where}: unexpected text {value!r}"
            else:
                assert field in _RANGES, f"{path}.{where}: no plausible range for field {field!r}; add one"
                low, high = _RANGES[field]
                assert _is_number(value) and low <= value <= high, \
                    f"{path}.{where} = {value!r} outside [{low}, {high}]"


def test_a_std_sits_beside_its_mean_and_top5_error_is_below_top1() -> None:
    for path, row in _all_rows():
        for where, field, _ in _fields(row):
            if field.endswith("_std"):
                mean = field.removesuffix("_std")
                group = row
                for part in where.split(".")[:-1]:
                    group = group[part]
                assert mean in group, f"{path}.{where}: a std without its mean {mean!r}"
            elif field == "std":
                assert {"error", "accuracy"} & set(row), f"{path}: `std` without `error` or `accuracy`"
        if "top1" in row and "top5" in row:
            assert row["top5"] < row["top1"], f"{path}: top-5 error {row['top5']} >= top-1 {row['top1']}"


def test_data_gap_is_the_distance_between_child_and_supernet_error() -> None:
    """DATA Table 8 prints the gap as a magnitude: SNAS' child is better than its supernet (2.13)."""
    gaps = [(path, row) for path, row in _all_rows() if "gap" in row]
    assert gaps, "no row with a gap: the check would prove nothing"
    for path, row in gaps:
        assert row["gap"] == pytest.approx(abs(row["child"] - row["search"]), abs=0.006), path


def test_no_derived_cell_beats_the_benchmark_optimum_of_its_own_table() -> None:
    tables = {section: body for section, body in paper_results().items()
              if isinstance(body, Mapping) and "optimal" in body}
    assert tables, "no table with an `optimal` row: the check would prove nothing"
    for section, body in tables.items():
        optimum = body["optimal"]
        for method, row in body.items():
            for dataset, splits in row.items():
                if not isinstance(splits, Mapping):
                    continue
                for split in ("valid", "test"):
                    if split in splits:
                        assert splits[split] <= optimum[dataset][split], \
                            f"{section}.{method}.{dataset}.{split} = {splits[split]} beats the optimum"


def _numbers(row: Mapping[str, Any]) -> dict[str, Any]:
    return {where: value for where, field, value in _fields(row) if field not in _CITATIONS}


def test_rows_with_equal_numbers_are_marked_as_printed_so_by_the_paper() -> None:
    for section, body in paper_results().items():
        for path, group in _groups(body, section):
            for name, row in group.items():
                twin = row.get("identical_in_paper")
                if twin is not None:
                    assert twin in group and _numbers(group[twin]) == _numbers(row), \
                        f"{path}.{name}: marked identical to {twin!r}, which is absent or differs"
            names = list(group)
            for index, first in enumerate(names):
                for second in names[index + 1:]:
                    if _numbers(group[first]) == _numbers(group[second]):
                        marks = {group[first].get("identical_in_paper"), group[second].get("identical_in_paper")}
                        assert {first, second} & marks, \
                            f"{path}: {first!r} and {second!r} hold the same numbers without `identical_in_paper`"


def _groups(node: Any, path: str) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """Mappings from row name to row: the scope inside which two rows must not silently coincide."""
    if not isinstance(node, Mapping):
        return
    rows = {key: value for key, value in node.items() if isinstance(value, Mapping) and "source" in value}
    if rows:
        yield path, rows
    for key, value in node.items():
        if key not in rows:
            yield from _groups(value, f"{path}.{key}")
