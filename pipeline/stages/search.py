"""The search stage: one method variant on one dataset with one seed.

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
from pipeline.layout import search_slice
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
    import torch

    from pipeline import tracking
    from pipeline.search.loop import SearchJob, run_search
    from pipeline.space.base import data_dir_of

    params = load_params(args.params)
    params.method(args.method)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tracking.stage_run("search", tracking.RunKey(args.dataset, args.method, args.seed),
                            params=search_slice(params, args.method), tags={"space": params.method(args.method).space},
                            tracking=params.tracking, out_dir=out) as logger:
        history: list[dict[str, Any]] = []
        arch_lines: list[str] = []

        def on_epoch_end(row: dict[str, Any], arch_row: dict[str, Any]) -> None:
            history.append(row)
            arch_lines.append(json.dumps(arch_row, separators=(",", ":")))
            write_csv(out / "history.csv", history)
            atomic_write_text(out / "arch_weights.jsonl", "\n".join(arch_lines) + "\n")
            logger.log_metrics(numeric(row), step=row["epoch"])

        job = SearchJob(params=params, method=args.method, dataset=args.dataset, seed=args.seed,
                        prepared_dir=args.prepared or data_dir_of(params, args.method, args.dataset), out_dir=out,
                        allow_nan_skip=args.allow_nan_skip, restart_on_change=args.restart_on_change,
                        progress=args.progress, on_epoch_end=on_epoch_end)
        summary, state = run_search(job)
        prov = provenance("search", search_slice(params, args.method), dataset=args.dataset, method=args.method,
                          seed=args.seed, threads=torch.get_num_threads())
        # A resumed run rewrites its files from the checkpointed history, so they are complete either way.
        write_csv(out / "history.csv", state.history)
        atomic_write_text(out / "arch_weights.jsonl",
                          "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in state.arch_history))
        architecture = {"final_weights": state.arch_history[-1], "method_state": summary.pop("method_state"),
                        "genotype": summary["genotype"], "provenance": prov}
        atomic_write_json(out / "architecture.json", architecture)
        summary["provenance"] = prov
        atomic_write_json(out / "summary.json", summary)
        for name in ("history.csv", "arch_weights.jsonl", "architecture.json", "summary.json"):
            logger.log_artifact(out / name)
        logger.log_metrics({"final_valid_acc": summary["final_valid_acc"],
                            "final_child_valid_acc": summary["final_child_valid_acc"],
                            "wall_time_s": summary["wall_time_s"]}, step=summary["epochs"])
    print(f"search finished: {out}/summary.json (valid acc {summary['final_valid_acc']:.2f}%)")
    return 0
