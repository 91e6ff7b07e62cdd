"""`python -m pipeline sync-tracking`: upload what stages could not send to MLflow.

A stage whose tracking server was unreachable still finishes, and leaves a `tracking_spool.jsonl` in its
output directory. This command finds every spool under `--results` and replays it; running it twice
uploads nothing the second time (see `pipeline.tracking` for why replays never duplicate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import tracking
from pipeline.errors import PipelineError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's flags."""
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="directory searched recursively for tracking spools (default: results)")
    parser.add_argument("--uri", default=None,
                        help="send to this tracking URI instead of the one each stage meant to use "
                             "(MLFLOW_TRACKING_URI, when set, also overrides it)")


def run(args: argparse.Namespace) -> int:
    """Replay every spool; exit 0 when all were uploaded (also when there was nothing to upload)."""
    if not args.results.is_dir():
        raise PipelineError(f"--results {args.results} is not a directory")
    spools = sorted(args.results.rglob(tracking.SPOOL_NAME))
    total = 0
    for spool in spools:

        def report(run_id: str, count: int, spool: Path = spool) -> None:
            print(f"{spool}: {count} records -> run {run_id}")

        total += tracking.sync_spool(spool, args.uri, on_run=report)
    print(f"uploaded {total} records from {len(spools)} spool files")
    return 0
