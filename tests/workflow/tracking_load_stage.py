"""One stand-in stage process of the tracking load tests: `python tracking_load_stage.py ARGS`.

It tracks a run through `pipeline.tracking.stage_run` exactly as a stage does (same parent key, same
spool), but its work is only logging: metric `value` at steps 0..2*STEPS-1 equal to
`index * 1000 + step`, so the test can say which run and which metric is missing or doubled without
trusting anything the pipeline wrote. Sequencing files in --sync make the processes race on purpose:

- it imports MLflow and creates the store, writes `ready-<index>`, then waits for `go`, so every process
  of the test reaches the parent lookup at the same moment rather than a few seconds apart;
- with --race-role, the two processes of a key meet right before creating a parent run (each waits
  up to RENDEZVOUS_S for the other, which comes only if it too found no parent), then `slow` takes its
  start time and waits 3 s before the run is committed, while `fast` waits 1 s before it starts
  creating. Both have found no parent, and the one with the older start time commits last: the
  interleaving in which "keep the oldest start time" gave each its own parent;
- with --pause, after the first half of its metrics is sent it writes `half-<index>` and waits for
  `resume` (the test stops the server in between).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path
from typing import Any

from pipeline import tracking
from pipeline.config import TrackingConfig

STEPS = 3  # metrics logged before and after the pause: 2 * STEPS values per run
SLOW_COMMIT_S = 3.0
FAST_START_S = 1.0
RENDEZVOUS_S = 10.0


def expected_metric(index: int, step: int) -> float:
    return float(index * 1000 + step)


def _wait_for(path: Path, timeout_s: float = 600.0) -> bool:
    """Wait until `path` exists; False when it did not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _slow_parent_creation(client_class: Any, role: str, sync: Path) -> None:
    """Delay `client_class.create_run` for parent runs (tagged with the parent key) as `role` says."""
    original = client_class.create_run
    partner = {"slow": "fast", "fast": "slow"}[role]

    @functools.wraps(original)
    def create_run(self: Any, experiment_id: str, start_time: int | None = None,
                   tags: dict[str, str] | None = None, **kwargs: Any) -> Any:
        if tags and tracking.PARENT_KEY_TAG in tags:
            meeting = f"create-{tags[tracking.PARENT_KEY_TAG].replace('/', '_')}"
            (sync / f"{meeting}-{role}").touch()
            _wait_for(sync / f"{meeting}-{partner}", RENDEZVOUS_S)
            if role == "fast":
                time.sleep(FAST_START_S)
            start_time = start_time or int(time.time() * 1000)
            if role == "slow":
                time.sleep(SLOW_COMMIT_S)
        return original(self, experiment_id, start_time=start_time, tags=tags, **kwargs)

    client_class.create_run = create_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--key", required=True, help="dataset/method/seed of the parent, e.g. d/m/3")
    parser.add_argument("--out", type=Path, required=True, help="the stage's output (and spool) directory")
    parser.add_argument("--sync", type=Path, required=True, help="directory of the sequencing files")
    parser.add_argument("--race-role", choices=("slow", "fast"))
    parser.add_argument("--pause", action="store_true")
    args = parser.parse_args()

    # MLflow is imported (and a new SQLite store created) before the release, so that every process
    # races from the same moment; not at the top, because the test module imports this file too.
    import mlflow

    tracking.ensure_store(tracking.tracking_uri(args.uri))
    if args.race_role:
        _slow_parent_creation(mlflow.MlflowClient, args.race_role, args.sync)
    (args.sync / f"ready-{args.index}").touch()
    if not _wait_for(args.sync / "go"):
        raise TimeoutError("the test never released the processes")

    dataset, method, seed = args.key.split("/")
    with tracking.stage_run("load", tracking.RunKey(dataset, method, int(seed)),
                            params={"load": {"index": args.index}}, tags={"load.index": str(args.index)},
                            tracking=TrackingConfig(uri=args.uri, experiment="load"), out_dir=args.out) as logger:
        for step in range(2 * STEPS):
            if step == STEPS:
                logger.flush()
                if args.pause:
                    (args.sync / f"half-{args.index}").touch()
                    if not _wait_for(args.sync / "resume"):
                        raise TimeoutError("the test never resumed the processes")
            logger.log_metrics({"value": expected_metric(args.index, step)}, step=step)


if __name__ == "__main__":
    main()
