"""What retrain and transfer share around the loop: tracking, history.csv and metrics.json.

Only rank 0 writes or tracks anything, so a DDP run leaves exactly the files of a single-process run.
metrics.json is written last: its presence marks the stage finished for Snakemake and DVC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from pipeline import tracking
from pipeline.atomic import atomic_write_json
from pipeline.config import Params
from pipeline.device import describe_device
from pipeline.nets import count_parameters_m, mult_adds_m
from pipeline.provenance import provenance
from pipeline.records import numeric, write_csv
from pipeline.train.distributed import DistContext
from pipeline.train.loop import TrainJob, TrainResult, train

Headline = Callable[[Mapping[str, Any]], dict[str, Any]]


def train_and_report(job: TrainJob, ctx: DistContext, *, stage: str, params: Params, dataset: str, method: str,
                     input_size: int, in_channels: int, headline: Headline,
                     tags: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Train `job` on every rank; on rank 0 also track it and write its files. Returns rank 0's metrics.

    `dataset` and `method` name the run in provenance and tracking (transfer passes the dataset searched
    on, so its run joins the search and retrain runs of the same genotype). `headline(last_row)` gives
    the stage's own metrics from the final history row; cost is measured at `input_size`.
    """
    out = job.out_dir
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    with tracking.stage_run(stage, tracking.RunKey(dataset, method, job.seed), params=job.config,
                            tags=dict(tags or {}), tracking=params.tracking, out_dir=out,
                            enabled=ctx.is_main) as logger:

        def on_epoch_end(history: list[dict[str, Any]]) -> None:
            write_csv(out / "history.csv", history)
            logger.log_metrics(numeric(history[-1]), step=history[-1]["epoch"])

        job.on_epoch_end = on_epoch_end
        result = train(job, ctx)
        if not ctx.is_main:
            return None
        metrics = _metrics(result, job, ctx, headline, input_size, in_channels)
        metrics["provenance"] = provenance(stage, job.config, dataset=dataset, method=method, seed=job.seed,
                                           threads=torch.get_num_threads())
        # A resumed (or already finished) run rewrites history from the checkpoint, so it is complete.
        write_csv(out / "history.csv", result.state.history)
        atomic_write_json(out / "metrics.json", metrics)
        for name in ("history.csv", "metrics.json"):
            logger.log_artifact(out / name)
        logger.log_metrics(numeric(metrics), step=job.settings.epochs)
    return metrics


def _metrics(result: TrainResult, job: TrainJob, ctx: DistContext, headline: Headline, input_size: int,
             in_channels: int) -> dict[str, Any]:
    last = result.state.history[-1]
    return {
        **headline(last),
        "params_m": count_parameters_m(result.model),
        "mult_adds_m": mult_adds_m(result.model, input_size, in_channels),
        "wall_time_s": round(result.state.wall_time_s, 3),
        "device": describe_device(ctx.device),
        "device_count": ctx.world_size,
        "epochs": job.settings.epochs,
        "samples_seen": result.state.samples_seen,
        "test_samples": last["test_samples"],
        "nan_skips": result.state.nan_skips,
    }
