"""The whole chain through the command line: prepare -> search -> derive -> retrain -> transfer -> tables."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from shipped_params import narrowed, write_yaml


def _tiny_params(path: Path) -> Path:
    raw = narrowed(["darts_2nd"])
    raw["grid"].update(seeds=[0], transfer=True)
    raw["runtime"]["device"] = "cpu"
    raw["search"].update(epochs=1, layers=3, channels=4, batch_size=8, max_steps_per_epoch=2)
    raw["search"]["analysis"].update(hessian_every=1, hessian_iterations=2)
    raw["retrain"].update(epochs=1, layers=3, channels=4, max_steps_per_epoch=4)
    raw["transfer"].update(epochs=1, layers=3, channels=8, max_steps_per_epoch=3, image_size=32)
    raw["data"]["imagenet_root"] = str(path.parent / "results/data/imagenet_demo")
    return write_yaml(path, raw)


def _pipeline(cwd: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pipeline", *args, "--params", "params.yaml"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stderr[-3000:]}"


def test_chain_through_the_cli_produces_a_table_row(tmp_path):
    _tiny_params(tmp_path / "params.yaml")
    run = "digits/darts_2nd/seed0"
    start = time.perf_counter()
    _pipeline(tmp_path, "prepare", "--dataset", "digits", "--out", "results/data/digits")
    _pipeline(tmp_path, "prepare", "--dataset", "imagenet_demo", "--out", "results/data/imagenet_demo")
    _pipeline(tmp_path, "search", "--dataset", "digits", "--method", "darts_2nd", "--seed", "0", "--no-progress",
              "--out", f"results/search/{run}")
    _pipeline(tmp_path, "derive", "--search-dir", f"results/search/{run}", "--out", f"results/genotypes/{run}.json")
    _pipeline(tmp_path, "retrain", "--genotype", f"results/genotypes/{run}.json", "--dataset", "digits",
              "--seed", "0", "--no-progress", "--out", f"results/retrain/{run}")
    _pipeline(tmp_path, "transfer", "--genotype", f"results/genotypes/{run}.json", "--seed", "0", "--no-progress",
              "--out", f"results/transfer/imagenet/{run}")
    _pipeline(tmp_path, "tables", "--results", "results", "--out", "results/tables", "--figures", "results/figures")
    elapsed = time.perf_counter() - start
    # The budget is two minutes; printed (pytest -s) rather than asserted, as timings on a shared
    # CI machine are not a correctness property.
    print(f"chain wall time: {elapsed:.1f} s")

    retrain = json.loads((tmp_path / f"results/retrain/{run}/metrics.json").read_text())
    transfer = json.loads((tmp_path / f"results/transfer/imagenet/{run}/metrics.json").read_text())
    assert 0 <= retrain["test_error"] <= 100 and retrain["params_m"] > 0
    assert 0 <= transfer["top5_error"] <= transfer["top1_error"] <= 100
    assert retrain["provenance"]["method"] == "darts_2nd" and retrain["provenance"]["seed"] == 0
    table = (tmp_path / "results/tables/digits.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| darts_2nd |"))
    assert f"{retrain['test_error']:.2f}" in row and "| ok |" in row
    assert (tmp_path / "results/tables/imagenet.csv").exists()
