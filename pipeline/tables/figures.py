"""Figures of the search: architecture weights, Hessian eigenvalue, accuracy curves, error vs paper.

Each function takes data already read (collect.py) and returns PNG bytes, or None when its input holds
nothing to plot, so the caller decides where to write and what to note. Figures are built on
`matplotlib.figure.Figure` with the Agg renderer and no pyplot state: nothing global changes, no display is
needed, and the same input gives the same bytes (the PNG carries no software/time metadata).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline.tables.table import OURS, SOURCE

_DPI = 100


def png_bytes(figure: Figure) -> bytes:
    """Render with Agg to PNG bytes, without metadata that would vary between runs."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _candidate_labels(edge_ops: list[list[str]]) -> list[str]:
    """The op names when every edge offers the same candidates, else "candidate i" (S1: a pair per edge)."""
    if all(ops == edge_ops[0] for ops in edge_ops):
        return list(edge_ops[0])
    return [f"candidate {i}" for i in range(len(edge_ops[0]))]


def edge_labels(num_edges: int) -> list[str]:
    """"input→node" per edge in the DARTS edge order (node i has inputs k-2, k-1, 0..i-1)."""
    labels = []
    node = 0
    while len(labels) < num_edges:
        labels += [f"{_input_name(j)}→{node}" for j in range(node + 2)]
        node += 1
    return labels[:num_edges]


# The recurrent space's one cell type (pipeline/space/rnn/operations.py CELL; no torch import here).
RECURRENT = "recurrent"


def recurrent_edge_labels(num_edges: int) -> list[str]:
    """"input→node" per edge of the recurrent cell: node i reads every earlier node 0..i-1, in that order."""
    labels = []
    node = 1
    while len(labels) < num_edges:
        labels += [f"{source}→{node}" for source in range(node)]
        node += 1
    return labels[:num_edges]


def arch_weights_figure(records: list[dict[str, Any]], title: str) -> bytes | None:
    """Per cell type, one op x epoch block per edge, side by side on one colour scale.

    The blocks share one image per cell type (white gaps between edges) rather than one axes per edge:
    28 axes cost seconds of tick layout, two cost a fraction.
    """
    if not records:
        return None
    edge_ops = records[-1]["edge_ops"]
    cells = list(edge_ops)
    epochs = [record["epoch"] for record in records]
    weights = {cell: np.asarray([record["weights"][cell] for record in records], dtype=float) for cell in cells}
    num_edges = max(values.shape[1] for values in weights.values())
    width = len(epochs) + 1  # one blank column after each block
    low = min(float(values.min()) for values in weights.values())
    high = max(float(values.max()) for values in weights.values())
    colormap = colormaps["viridis"].with_extremes(bad="white")
    figure = Figure(figsize=(min(4.0 + 0.12 * num_edges * width, 30.0), 3.25 * len(cells)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(cells), 1))
    image = None
    for ax, cell in zip(axes, cells, strict=True):
        cell_edges, candidates = weights[cell].shape[1:]
        blocks = np.full((candidates, cell_edges * width - 1), np.nan)
        for edge in range(cell_edges):
            blocks[:, edge * width: edge * width + len(epochs)] = weights[cell][:, edge, :].T
        image = ax.imshow(blocks, aspect="auto", interpolation="nearest", cmap=colormap, vmin=low, vmax=high)
        ax.set_yticks(range(candidates), _candidate_labels(edge_ops[cell]), fontsize=7)
        ax.set_xticks([edge * width + (len(epochs) - 1) / 2 for edge in range(cell_edges)],
                      (recurrent_edge_labels if cell == RECURRENT else edge_labels)(cell_edges), fontsize=7,
                      rotation=45)
        ax.set_title(f"{cell} cell: one block per edge (input→node), epochs {epochs[0]}..{epochs[-1]} "
                     "left to right", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.7, label="weight")
    figure.suptitle(title, fontsize=9)
    return png_bytes(figure)


def hessian_figure(histories: pd.DataFrame, methods: list[str], title: str) -> bytes | None:
    """Dominant Hessian eigenvalue per epoch, mean ± std over seeds, one line per method."""
    return _curves(histories, methods, title, [("hessian_eig", "-", "")], "dominant Hessian eigenvalue")


def accuracy_figure(histories: pd.DataFrame, methods: list[str], title: str) -> bytes | None:
    """Supernet validation accuracy (solid) and derived-architecture accuracy (dashed) per epoch."""
    series = [("valid_acc", "-", "supernet"), ("child_valid_acc", "--", "derived")]
    return _curves(histories, methods, title, series, "validation accuracy (%)")


def perplexity_figure(histories: pd.DataFrame, methods: list[str], title: str) -> bytes | None:
    """Validation perplexity per epoch of the language models, mean ± std over seeds, one line per method."""
    return _curves(histories, methods, title, [("valid_ppl", "-", "")], "validation perplexity")


def error_vs_paper_figure(frame: pd.DataFrame, title: str) -> bytes | None:
    """Bars of our test error per method (error bars: std over seeds) beside the paper's number."""
    ours = frame[frame[SOURCE] == OURS]
    if ours["test_error_mean"].isna().all():
        return None
    positions = np.arange(len(ours))
    has_paper = not ours["paper_error"].isna().all()
    width = 0.4 if has_paper else 0.6
    figure = Figure(figsize=(max(4.0, 1.2 * len(ours) + 1.5), 3.5), layout="constrained")
    ax = figure.subplots()
    ax.bar(positions - (width / 2 if has_paper else 0), ours["test_error_mean"].fillna(0), width,
           yerr=ours["test_error_std"].fillna(0), capsize=3, label="ours")
    if has_paper:
        ax.bar(positions + width / 2, ours["paper_error"].fillna(0), width,
               yerr=ours["paper_std"].fillna(0), capsize=3, label="paper")
    ax.set_xticks(positions, list(ours["method"]), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test error (%)")
    ax.set_title(title if has_paper else f"{title} (no paper numbers)", fontsize=9)
    ax.legend(fontsize=8)
    return png_bytes(figure)


def anytime_figure(histories: pd.DataFrame, methods: list[str], title: str) -> bytes | None:
    """Left: the benchmark's test accuracy of each epoch's derived cell (`benchmark_test_acc`); right: the
    dominant Hessian eigenvalue; mean ± std over seeds per method (the figure SDARTS and DrNAS draw)."""
    panels = [([("benchmark_test_acc", "-", "")], "benchmark test accuracy (%)"),
              ([("hessian_eig", "-", "")], "dominant Hessian eigenvalue")]
    if not _present(histories, panels[0][0]):
        return None
    figure = Figure(figsize=(11.0, 3.6), layout="constrained")
    for ax, (series, ylabel) in zip(figure.subplots(1, 2), panels, strict=True):
        _draw_curves(ax, histories, methods, _present(histories, series), ylabel)
    figure.suptitle(title, fontsize=9)
    return png_bytes(figure)


def _present(histories: pd.DataFrame, series: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [(key, style, label) for key, style, label in series
            if key in histories.columns and histories[key].notna().any()]


def _curves(histories: pd.DataFrame, methods: list[str], title: str, series: list[tuple[str, str, str]],
            ylabel: str) -> bytes | None:
    """Mean ± std over seeds of history columns vs epoch; a colour per method, a line style per series."""
    present = _present(histories, series)
    if not present:
        return None
    figure = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = figure.subplots()
    _draw_curves(ax, histories, methods, present, ylabel)
    ax.set_title(title, fontsize=9)
    return png_bytes(figure)


def _draw_curves(ax: Any, histories: pd.DataFrame, methods: list[str], present: list[tuple[str, str, str]],
                 ylabel: str) -> None:
    colours = {method: f"C{index % 10}" for index, method in enumerate(methods)}
    for method in methods:
        mine = histories[histories["method"] == method]
        for key, style, label in present:
            stats = mine.dropna(subset=[key]).groupby("epoch")[key].agg(["mean", "std"]).fillna({"std": 0.0})
            if stats.empty:
                continue
            name = f"{method} ({label})" if label else method
            ax.plot(stats.index, stats["mean"], style, color=colours[method], label=name, marker=".")
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=colours[method], alpha=0.2, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if present:
        ax.legend(fontsize=7)


def _input_name(index: int) -> str:
    return ("k-2", "k-1")[index] if index < 2 else str(index - 2)
