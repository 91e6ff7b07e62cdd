"""The recurrent space's tables: perplexity of the searched cells on the search corpus (DARTS Table 2,
SDARTS Table 3, DATA Table 3 on PTB) and on the transfer corpus (DATA Table 4 on WikiText-2), our rows
beside the papers'.

A grid.rnn variant named `rnn_<key>` (e.g. rnn_darts_2nd) stands beside the paper row `<key>` of section
ptb / wikitext2 of pipeline/reference/paper_results.yaml; the tables are named `lm_<corpus>` and
`lm_<target>_from_<corpus>`, apart from the main grid's per-dataset tables. Our row is the mean over the
seeds, or with grid.rnn.select the one seed DARTS' protocol keeps (§3.2: the lowest validation perplexity
after the short training of the select stage), on the search corpus and after transfer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.tables.aggregate import COUNT_KEYS, GPU_DAYS, cost_unit, counts, our_summary, seed_mean, status_text
from pipeline.tables.grid import Grid
from pipeline.tables.reference import paper_perplexity
from pipeline.tables.selection import SELECTION_SCORES, select_best, selection_scores
from pipeline.tables.table import OURS, PAPER, PAPER_ONLY, SOURCE, Column, Table, typed_frame

VARIANT_PREFIX = "rnn_"
_TEXT_KEYS = ("method", SOURCE, "search_cost_unit", "status")
_KEYS = ["method", SOURCE, "valid_ppl_mean", "valid_ppl_std", "test_ppl_mean", "test_ppl_std", "n_finished",
         "n_planned", "params_m", "search_cost_days", "search_cost_unit", "paper_valid", "paper_test",
         "paper_params_m", "paper_search_cost_gpu_days", "status"]
_SEED_NOTE = ("Our numbers: mean ± sample std over the seeds that finished (std omitted for one seed); perplexity "
              "of the weights with the best validation perplexity (rnn/train.py's protocol); n = finished/planned.")
_SELECT_NOTE = ("Our numbers: per variant, the seed whose cell scored the lowest validation perplexity after the short "
                "training of the select stage (DARTS §3.2; ties: the lower seed), trained fully; perplexity of the "
                "weights with the best validation perplexity (rnn/train.py's protocol); n = finished/planned of "
                "that seed.")
_PERPLEXITY = SELECTION_SCORES["text"]
_NOT_SELECTED = "no seed selected: no select run of this variant has finished"


def selected_seeds(results: Path, corpus: str, grid: Grid) -> dict[str, int | None]:
    """Per grid.rnn variant, the seed the select stage's scores on `corpus` pick (None: no score yet)."""
    chosen = {}
    for method in grid.rnn.methods:
        best = select_best(selection_scores(results, corpus, [method], grid.seeds, _PERPLEXITY), _PERPLEXITY)
        chosen[method] = None if best is None else best[1]
    return chosen


def paper_key(method: str) -> str:
    """The paper row a grid.rnn variant stands beside."""
    return method.removeprefix(VARIANT_PREFIX)


def table_name(corpus: str, searched_on: str | None = None) -> str:
    """lm_<corpus> for the cells trained on their search corpus, lm_<target>_from_<corpus> when transferred."""
    return f"lm_{corpus}_from_{searched_on}" if searched_on else f"lm_{corpus}"


def perplexity_table(runs: pd.DataFrame, corpus: str, grid: Grid, *, searched_on: str | None = None,
                     selected: Mapping[str, int | None] | None = None) -> Table:
    """Our variants trained on `corpus` (searched on it, or on `searched_on` when transferred), then the
    paper's other rows on `corpus`. With `selected` (variant -> seed, `selected_seeds`), each variant's row
    is that seed's run alone."""
    paper = paper_perplexity(corpus)
    ours = {paper_key(method) for method in grid.rnn.methods}
    rows = []
    for method in grid.rnn.methods:
        mine = runs[runs["method"] == method]
        if selected is not None:
            mine = mine[mine["seed"] == selected.get(method)]
        status = _NOT_SELECTED if selected is not None and selected.get(method) is None else status_text(mine)
        rows.append({"method": method, SOURCE: OURS, **our_summary(mine, "valid_ppl", "valid_ppl"),
                     **our_summary(mine, "test_ppl", "test_ppl"), **counts(mine),
                     "params_m": seed_mean(mine, "params_m"), "search_cost_days": seed_mean(mine, "search_cost_days"),
                     "search_cost_unit": cost_unit(mine), **_paper_columns(paper.get(paper_key(method), {})),
                     "status": status})
    rows += [{"method": key, SOURCE: PAPER, **_paper_columns(entry), "status": PAPER_ONLY}
             for key, entry in paper.items() if key not in ours]
    frame = typed_frame(rows, _KEYS, integers=COUNT_KEYS, texts=_TEXT_KEYS)
    units = sorted({unit for unit in frame["search_cost_unit"] if isinstance(unit, str)})
    where = f"searched on {searched_on}, trained on {corpus}" if searched_on else f"searched and trained on {corpus}"
    paper_note = (f"Paper columns: pipeline/reference/paper_results.yaml, section `{corpus}` (variant rnn_<key> beside "
                  f"row <key>); darts_v2_released: the DARTS authors' pretrained model." if paper
                  else f"The papers report no numbers on {corpus}.")
    return Table(
        name=table_name(corpus, searched_on),
        title=f"{corpus}: perplexity of the searched recurrent cells ({where})",
        notes=(_SEED_NOTE if selected is None else _SELECT_NOTE, paper_note),
        frame=frame,
        columns=(
            Column("method", "method", kind="text"),
            Column("valid ppl", "valid_ppl_mean", std_key="valid_ppl_std", better="lower"),
            Column("test ppl", "test_ppl_mean", std_key="test_ppl_std", better="lower"),
            Column("n", "n_finished", kind="ratio", total_key="n_planned"),
            Column("params (M)", "params_m", significant=2, better="lower"),
            Column(f"search cost ({' / '.join(units) or GPU_DAYS})", "search_cost_days", significant=2),
            Column("paper valid ppl", "paper_valid", decimals=1),
            Column("paper test ppl", "paper_test", decimals=1),
            Column("paper params (M)", "paper_params_m"),
            Column(f"paper cost ({GPU_DAYS})", "paper_search_cost_gpu_days"),
            Column("status", "status", kind="text"),
        ),
    )


def _paper_columns(entry: dict[str, Any]) -> dict[str, Any]:
    return {"paper_valid": entry.get("valid"), "paper_test": entry.get("test"),
            "paper_params_m": entry.get("params"), "paper_search_cost_gpu_days": entry.get("search_cost")}
