"""Diagrams of the normal and reduction cells of a genotype (design.md "Genotype JSON").

Graphviz draws the nicer diagram, but it is an external binary the pipeline must not require: the caller
passes `use_graphviz` (whether `dot` is on PATH) and otherwise gets a matplotlib drawing of the same graph:
inputs c_{k-2} and c_{k-1}, intermediate nodes 0..n-1, output c_{k}, one arrow per (op, input) pair.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from typing import Any

from matplotlib.figure import Figure

from pipeline.errors import PipelineError
from pipeline.tables.figures import png_bytes

# The cell keys of the DARTS genotype JSON (design.md); the tables stay torch-free, so this is not imported
# from pipeline.space.genotype.CELLS (tests/test_spaces.py checks that they agree).
CELL_TYPES = ("normal", "reduce")

_INPUTS = ("c_{k-2}", "c_{k-1}")
_OUTPUT = "c_{k}"


def cell_edges(genotype: dict[str, Any], cell: str) -> list[tuple[str, int, int]]:
    """(op, input node, target node) of a cell; inputs 0, 1 are the previous cells, 2.. the nodes."""
    nodes = genotype.get(cell)
    if not isinstance(nodes, list):
        raise PipelineError(f"genotype: '{cell}' must be a list of nodes, got {type(nodes).__name__}")
    edges = []
    for index, pairs in enumerate(nodes):
        for pair in pairs:
            if not (isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[1], int)):
                raise PipelineError(f"genotype: {cell}[{index}] holds {pair!r}, expected [op, input]")
            edges.append((str(pair[0]), int(pair[1]), index + 2))
    return edges


def concat_nodes(genotype: dict[str, Any], cell: str) -> list[int]:
    """The nodes concatenated into the cell output (all intermediate nodes when unspecified)."""
    return list(genotype.get(f"{cell}_concat") or range(2, len(genotype[cell]) + 2))


def cell_dot_source(genotype: dict[str, Any], title: str) -> str:
    """Graphviz source: one cluster per cell type, left to right."""
    lines = ["digraph cells {", "  rankdir=LR;", f'  label="{title}";', "  node [shape=box, style=rounded];"]
    for cell in CELL_TYPES:
        prefix = cell[0]
        edges = cell_edges(genotype, cell)
        lines += [f"  subgraph cluster_{cell} {{", f'    label="{cell} cell";']
        lines += [f'    {prefix}{index} [label="{_node_name(index)}"];'
                  for index in range(len(genotype[cell]) + 2)]
        lines.append(f'    {prefix}out [label="{_OUTPUT}"];')
        lines += [f'    {prefix}{source} -> {prefix}{target} [label="{op}"];' for op, source, target in edges]
        lines += [f"    {prefix}{node} -> {prefix}out [style=dashed];"
                  for node in concat_nodes(genotype, cell)]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def cells_figure(genotype: dict[str, Any], title: str, use_graphviz: bool) -> bytes:
    """PNG of both cells: through `dot` when asked, else drawn with matplotlib."""
    if use_graphviz:
        return _graphviz_png(cell_dot_source(genotype, title))
    # One colour per op, in order of first use over both cells: a function of the genotype alone.
    ops = dict.fromkeys(op for cell in CELL_TYPES for op, _, _ in cell_edges(genotype, cell))
    colours = {op: f"C{index % 10}" for index, op in enumerate(ops)}
    figure = Figure(figsize=(13.0, 5.5), layout="constrained")
    for ax, cell in zip(figure.subplots(1, 2), CELL_TYPES, strict=True):
        _draw_cell(ax, genotype, cell, colours)
    figure.suptitle(title, fontsize=10)
    return png_bytes(figure)


def _graphviz_png(source: str) -> bytes:
    try:
        done = subprocess.run(["dot", "-Tpng"], input=source.encode("utf-8"), capture_output=True, check=True)
    except subprocess.CalledProcessError as exc:
        raise PipelineError(f"graphviz `dot` failed: {exc.stderr.decode(errors='replace').strip()}") from None
    return done.stdout


def _draw_cell(ax: Any, genotype: dict[str, Any], cell: str, colours: dict[str, str]) -> None:
    """Inputs on the left, intermediate nodes in a column, output on the right; one arrow per pair."""
    edges = cell_edges(genotype, cell)
    num_nodes = len(genotype[cell])
    position = {0: (0.0, 1.2), 1: (0.0, -1.2)}
    position |= {index + 2: (3.0, 1.5 * ((num_nodes - 1) / 2 - index)) for index in range(num_nodes)}
    output = (5.5, 0.0)
    seen: Counter[tuple[int, int]] = Counter()
    for op, source, target in edges:
        # Node-to-node edges share a column: bow the longer ones out so they clear the nodes between.
        bow = 0.0 if source < 2 else 0.35 * (target - source - 1)
        rad = bow + 0.25 * seen[(source, target)]
        seen[(source, target)] += 1
        _arc(ax, position[source], position[target], rad, op, colours[op])
    for node in concat_nodes(genotype, cell):
        _arc(ax, position[node], output, 0.0, "", "grey")
    for index, (x, y) in [*position.items(), (-1, output)]:
        name = _OUTPUT if index == -1 else _node_name(index)
        ax.text(x, y, f"${name}$" if "_" in name else name, ha="center", va="center", fontsize=10, zorder=3,
                bbox={"boxstyle": "round", "facecolor": "lightblue" if index >= 2 else "wheat"})
    half_height = 0.75 * num_nodes + 0.6
    ax.set_xlim(-0.8, output[0] + 0.8)
    ax.set_ylim(-half_height, half_height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"{cell} cell", fontsize=10)


def _arc(ax: Any, start: tuple[float, float], end: tuple[float, float], rad: float, label: str,
         colour: str) -> None:
    """An arrow along matplotlib's arc3 curve, labelled near its head (equal aspect assumed)."""
    ax.annotate("", xy=end, xytext=start, arrowprops={
        "arrowstyle": "-|>", "connectionstyle": f"arc3,rad={rad}", "shrinkA": 14, "shrinkB": 14,
        "color": colour, "linestyle": "-" if label else "--"})
    if label:
        # arc3 is the quadratic Bezier with control point mid + rad * (dy, -dx); the label sits at t = 0.72,
        # nearer the target, where the edges fanning out of one input have separated.
        dx, dy = end[0] - start[0], end[1] - start[1]
        control = ((start[0] + end[0]) / 2 + rad * dy, (start[1] + end[1]) / 2 - rad * dx)
        t = 0.72
        x, y = ((1 - t) ** 2 * start[i] + 2 * t * (1 - t) * control[i] + t**2 * end[i] for i in range(2))
        ax.text(x, y, label, ha="center", va="center", fontsize=7, zorder=2, color=colour,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})


def _node_name(index: int) -> str:
    return _INPUTS[index] if index < 2 else str(index - 2)
