"""The derive stage: the genotype JSON of a finished search.

The search already derives its final genotype (each method's own rule) into summary.json, which it writes
last; this stage checks that the search finished, attaches the search's provenance and writes the file
retrain and transfer read, so the genotype is a small, reviewable artefact of its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline import tracking
from pipeline.config import load_params
from pipeline.errors import GenotypeError, PipelineError
from pipeline.space.base import genotype_from_json, get_space
from pipeline.stages.common import add_params_argument

PROVENANCE_KEYS = ("method", "dataset", "seed", "git_commit", "params_sha256")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_argument(parser)
    parser.add_argument("--search-dir", type=Path, required=True, help="a search's output dir with summary.json")
    parser.add_argument("--out", type=Path, required=True, help="genotype file, e.g. results/genotypes/D/M/seedS.json")


def genotype_of_search(search_dir: Path) -> Any:
    """The final genotype in `search_dir`/summary.json, carrying the search's provenance."""
    path = search_dir / "summary.json"
    if not path.exists():
        raise PipelineError(f"{path} does not exist: the search in {search_dir} is not finished (summary.json "
                            f"is written last). Run or resume it with the same `python -m pipeline search` command.")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        searched = summary["provenance"]
        record = {key: searched[key] for key in PROVENANCE_KEYS}
        return genotype_from_json({**summary["genotype"], "provenance": record}, "genotype")
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{path}: not a search summary with a genotype and provenance "
                            f"({type(exc).__name__}: {exc})") from None
    except GenotypeError as exc:
        raise GenotypeError(f"{path}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    genotype = genotype_of_search(args.search_dir)
    record: dict[str, Any] = dict(genotype.provenance)
    space = get_space(genotype.search_space)
    key = tracking.RunKey(record["dataset"], record["method"], record["seed"])
    with tracking.stage_run("derive", key, params=params.derive.model_dump(mode="json"), tags={"space": space.name},
                            tracking=params.tracking, out_dir=args.out.parent) as logger:
        space.save_genotype(args.out, genotype)
        logger.log_artifact(args.out)
    print(f"genotype of {args.search_dir} -> {args.out}")
    print(space.render(genotype))
    return 0
