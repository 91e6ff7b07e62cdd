"""retrain, select and transfer of a recurrent genotype: train its language model on a corpus and report
perplexity.

`retrain` trains on the corpus the cell was searched on (PTB, language_model.retrain), `select` does the same
for language_model.select's few epochs (DARTS' selection protocol; valid perplexity only), `transfer --target
CORPUS` on another corpus (WikiText-2, language_model.transfer). Each writes, under --out, checkpoint.pt and
history.csv (valid perplexity per epoch) every epoch and metrics.json last (valid / test perplexity of the
best validation weights, params_m, provenance), tracked in MLflow like the image stages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline import tracking
from pipeline.atomic import atomic_write_json
from pipeline.config import Params
from pipeline.errors import PipelineError
from pipeline.layout import lm_training_slice
from pipeline.provenance import provenance
from pipeline.records import numeric, write_csv


def is_text_genotype(genotype: Any) -> bool:
    from pipeline.space.base import get_space

    return get_space(genotype.search_space).data_kind == "text"


def run_text_training(params: Params, stage: str, genotype: Any, cells: dict[str, Any], *, method: str,
                      corpus: str, searched_on: str, seed: int, prepared: Path, out: Path,
                      restart_on_change: bool) -> dict[str, Any]:
    """Train and test on `corpus`; the MLflow run joins the (searched_on, method, seed) runs of the genotype."""
    import torch

    from pipeline.train.lm.text_training import train_text_genotype

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise PipelineError(f"{stage} of a recurrent cell trains one language model in one process, not under "
                            f"torchrun: set resources.{stage}.gpu to 1 for grid.rnn")
    out.mkdir(parents=True, exist_ok=True)
    config = lm_training_slice(params, stage, params.lm_settings(stage, method), cells, dataset=corpus, method=method,
                               seed=seed)
    with tracking.stage_run(stage, tracking.RunKey(searched_on, method, seed), params=config,
                            tags={"space": genotype.search_space, "target_dataset": corpus},
                            tracking=params.tracking, out_dir=out) as logger:

        def on_epoch_end(history: list[dict[str, Any]]) -> None:
            write_csv(out / "history.csv", history)
            logger.log_metrics(numeric(history[-1]), step=history[-1]["epoch"])

        trained = train_text_genotype(params, stage, genotype, config, method, corpus, seed, prepared, out,
                                      restart_on_change=restart_on_change, on_epoch_end=on_epoch_end)
        metrics = {**trained.metrics, "searched_on": searched_on,
                   "provenance": provenance(stage, config, dataset=corpus, method=method, seed=seed,
                                            threads=torch.get_num_threads())}
        write_csv(out / "history.csv", trained.history)
        atomic_write_json(out / "metrics.json", metrics)
        for name in ("history.csv", "metrics.json"):
            logger.log_artifact(out / name)
        logger.log_metrics(numeric(metrics), step=metrics["epochs"])
    tested = f", test ppl {metrics['test_ppl']:.2f}" if "test_ppl" in metrics else ""
    print(f"{stage} finished: {out}/metrics.json (valid ppl {metrics['valid_ppl']:.2f}{tested} on {corpus}, "
          f"{metrics['params_m']:.2f} M params)")
    return metrics
