"""`python -m pipeline <stage>`: the one front door to every stage.

Stage modules are imported only when chosen, so `tables` or `--help` do not pay for importing torch.
Errors caused by input (PipelineError) print one clear message and exit 2; a stop requested by SIGTERM
or SIGUSR1 exits 75 after its checkpoint ("try again": rerunning resumes). A failing stage leaves a
FAILED.json beside its outputs so the tables say why a run is missing.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from pipeline.markers import failure_marker

STAGES: dict[str, str] = {
    "prepare": "Write dataset splits and a checksummed manifest (and the demo ImageFolder tree).",
    "search": "Search an architecture: one method variant, dataset and seed.",
    "derive": "Derive the genotype JSON of a finished search.",
    "retrain": "Train the evaluation network of a genotype from scratch and test it (a recurrent cell: its "
               "language model, perplexity).",
    "select": "Short retrain of a genotype scored on validation data (S1-S4 selection; DARTS' recurrent cell).",
    "transfer": "Train the ImageNet network of a genotype (mobile setting) and report top-1/top-5; a recurrent "
                "cell: its language model on the corpus --target (perplexity).",
    "tables": "Paper-shaped tables and figures from every metrics file of the grid.",
    "inspect": "Params, mult-adds and a rendering of a genotype's network.",
    "spaces": "List the registered search spaces, or show one's candidate operations per edge.",
    "bench": "Time one search step of every method on a fixed synthetic batch.",
    "config": "Validate a params file, or print every key with its default and description.",
    "sync-tracking": "Upload MLflow records that could not be sent while a stage ran.",
}


def _module(stage: str):
    return importlib.import_module(f"pipeline.stages.{stage.replace('-', '_')}")


def _marker_of(args: argparse.Namespace) -> Path | None:
    """Where this invocation records a failure (none for stages without an --out)."""
    out = getattr(args, "out", None)
    return None if out is None else failure_marker(Path(out))


def _record_failure(args: argparse.Namespace, stage: str, error: BaseException) -> None:
    marker = _marker_of(args)
    if marker is None:
        return
    from pipeline.atomic import atomic_write_json
    from pipeline.provenance import git_commit

    try:
        atomic_write_json(marker, {"stage": stage, "error": f"{type(error).__name__}: {error}",
                                   "provenance": {"git_commit": git_commit(), "argv": sys.argv[1:]}})
    except Exception as exc:  # the original error matters more than the marker
        logging.getLogger(__name__).warning("could not write %s: %s", marker, exc)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for `argv`: every stage's name, and the arguments of the stage `argv` names only, so that
    only that stage's module is imported. Also how tests check a documented command line without running it."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    chosen = next((a for a in argv if a in STAGES), None)
    for name, summary in STAGES.items():
        stage_parser = sub.add_parser(name, help=summary, description=summary)
        if name == chosen:
            _module(name).add_arguments(stage_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pipeline.errors import EXIT_PREEMPTED, PipelineError, Preempted

    marker = _marker_of(args)
    try:
        status = _module(args.stage).run(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _record_failure(args, args.stage, exc)
        return 2
    except Preempted as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_PREEMPTED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        traceback.print_exc()
        _record_failure(args, args.stage, exc)
        return 1
    if status == 0 and marker is not None:
        marker.unlink(missing_ok=True)
    return status
