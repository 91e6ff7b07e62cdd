"""The search stage: one method variant on one dataset with one seed.

A variant of a text space (the recurrent space, grid.rnn) runs the language-model search of
pipeline/train/lm/stages.py on a prepared corpus instead, writing the same files.

Writes, under --out: checkpoint.pt (every epoch; resumable), history.csv and arch_weights.jsonl (every
epoch), architecture.json (final weights and method state) and, last, summary.json: its presence is
what marks the search finished for Snakemake and DVC.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_json, atomic_write_text
from pipeline.config import load_params
from pipeline.errors import ConfigError
from pipeline.layout import is_text_variant, search_slice
from pipeline.provenance import provenance
from pipeline.records import numeric, write_csv
from pipeline.stages.common import add_params_argument, add_run_control_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_argument(parser)
    parser.add_argument("--dataset", required=True,
                        help="dataset name (digits, cifar10, cifar100, svhn, imagenet16_120, imagenet)")
    parser.add_argument("--method", required=True, help="method variant defined under search.methods")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--prepared", type=Path, help="prepare's output dir (default: results/data/DATASET; "
                                                      "NAS-Bench-201 variants: results/data/nb201/DATASET)")
    parser.add_argument("--out", type=Path, required=True, help="output dir, e.g. results/search/D/M/seedS")
    add_run_control_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.train.distributed import distributed_context

    params = load_params(args.params)
    params.method(args.method)
    # Under torchrun (resources.search.gpu > 1) every process runs the search; rank 0 writes and tracks.
    with distributed_context(params.runtime.device) as dist:
        return _run(args, params, dist)


def _run(args: argparse.Namespace, params: Any, dist: Any) -> int:
    import torch

    from pipeline import tracking
    from pipeline.space.base import data_dir_of

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    text = is_text_variant(params, args.method)
    if text and dist.distributed:
        raise ConfigError(f"search {args.method}: the recurrent space's language-model search runs on one process; "
                          f"set resources.search.gpu to 1 (this job has {dist.world_size})")
    with tracking.stage_run("search", tracking.RunKey(args.dataset, args.method, args.seed),
                            params=search_slice(params, args.method), tags={"space": params.method(args.method).space},
                            tracking=params.tracking, out_dir=out, enabled=dist.is_main) as logger:

        def write_rows(history: list[dict[str, Any]], arch_history: list[dict[str, Any]]) -> None:
            write_csv(out / "history.csv", history)
            atomic_write_text(out / "arch_weights.jsonl",
                              "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in arch_history))

        def on_epoch_end(history: list[dict[str, Any]], arch_history: list[dict[str, Any]]) -> None:
            write_rows(history, arch_history)
            logger.log_metrics(numeric(history[-1]), step=history[-1]["epoch"])

        prepared = args.prepared or data_dir_of(params, args.method, args.dataset)
        if text:
            from pipeline.train.lm.setup import refuse_nan_skip
            from pipeline.train.lm.text_search import run_text_search

            refuse_nan_skip(args.allow_nan_skip)
            found = run_text_search(params, args.method, args.dataset, args.seed, prepared, out,
                                    restart_on_change=args.restart_on_change, on_epoch_end=on_epoch_end)
            summary, history, arch_history = found.summary, found.history, found.arch_history
        else:
            summary, history, arch_history = _image_search(args, params, prepared, on_epoch_end, dist)
            if not dist.is_main:
                return 0
        prov = provenance("search", search_slice(params, args.method), dataset=args.dataset, method=args.method,
                          seed=args.seed, threads=torch.get_num_threads())
        # A resumed run rewrites its files from the checkpointed history, so they are complete either way.
        write_rows(history, arch_history)
        architecture = {"final_weights": arch_history[-1], "method_state": summary.pop("method_state"),
                        "genotype": summary["genotype"], "provenance": prov}
        atomic_write_json(out / "architecture.json", architecture)
        summary["provenance"] = prov
        atomic_write_json(out / "summary.json", summary)
        for name in ("history.csv", "arch_weights.jsonl", "architecture.json", "summary.json"):
            logger.log_artifact(out / name)
        headline = HEADLINE_TEXT if text else HEADLINE_IMAGE
        logger.log_metrics({key: summary[key] for key in (*headline, "wall_time_s")}, step=summary["epochs"])
    what = (f"valid ppl {summary['final_valid_ppl']:.2f}" if text else f"valid acc {summary['final_valid_acc']:.2f}%")
    print(f"search finished: {out}/summary.json ({what})")
    return 0


# The summary's headline metrics, logged to MLflow at the end: image searches report accuracies, text
# searches (the recurrent space) the validation perplexity.
HEADLINE_IMAGE = ("final_valid_acc", "final_child_valid_acc")
HEADLINE_TEXT = ("final_valid_loss", "final_valid_ppl")


def _image_search(args: argparse.Namespace, params: Any, prepared: Path, on_epoch_end: Any, dist: Any
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    from pipeline.search.loop import SearchJob, run_search

    history: list[dict[str, Any]] = []
    arch_history: list[dict[str, Any]] = []

    def on_image_epoch_end(row: dict[str, Any], arch_row: dict[str, Any]) -> None:
        history.append(row)
        arch_history.append(arch_row)
        on_epoch_end(history, arch_history)

    job = SearchJob(params=params, method=args.method, dataset=args.dataset, seed=args.seed, prepared_dir=prepared,
                    out_dir=args.out, allow_nan_skip=args.allow_nan_skip, restart_on_change=args.restart_on_change,
                    progress=args.progress, on_epoch_end=on_image_epoch_end, dist=dist)
    summary, state = run_search(job)
    return summary, state.history, state.arch_history
