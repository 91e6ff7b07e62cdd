"""Data-parallel search: two gloo processes on the CPU against the 1-process search as the oracle.

One spawned process group runs every registered method's variants (the methods' `bench` variants, so a
newly registered method is covered without editing this file) through the real search loop, recording
the method's whole state after every step on every rank; the same searches run in this process on one
process. The global batch is the params' batch in both, so both see the same samples at each step (the
two shards together are the 1-process batch) and must end with the same architecture and method state:
equal to fp32 rounding for learned tensors, exactly for sampled ones (masks, counts, candidates), and
bit-identical between the two ranks at every step. The same group then stops a search mid-epoch on rank
0 alone and resumes it, which must reproduce the uninterrupted 2-process search bit for bit.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from search_e2e import prepare_digits, tiny_params
from torch import distributed as dist

from pipeline.config import load_params
from pipeline.errors import Preempted
from pipeline.methods import list_methods, method_class
from pipeline.search import loop
from pipeline.search.loop import SearchJob, run_search
from pipeline.train.distributed import DistContext

WORLD = 2
# The smallest search: 3 cells of 2 nodes, C=4, global batch 4 (2 per process), 2 epochs of 1 step.
SEARCH = {"channels": 4, "max_steps_per_epoch": 1}
# Options that make each method's multi-epoch state change within the 2 epochs: DrNAS crosses a
# progressive stage (widening, pruning), DDSAS resamples its subspace every step, random search switches
# candidate; SDARTS-ADV's attack is shortened (each of its steps is the same computation).
OPTIONS = {
    "drnas": {"warmup_epochs": 0, "stages": [{"epochs": 1, "partial_k": 4, "keep_ops": 7},
                                             {"epochs": 1, "partial_k": 2, "keep_ops": 4}]},
    "ddsas": {"num_sampled": 6, "update_every": 1},
    "random": {"candidates": 2, "train_epochs": 1},
    "sdarts": {"attack_steps": 2},
}
# The resume check: DARTS stopped after the first of an epoch's 2 steps.
RESUMED = "darts_resumed"
STOP_AT_STEP = 1


def variants() -> dict[str, dict[str, Any]]:
    """One params entry per registered method: the last variant it names for `bench` (second-order DARTS,
    SDARTS-ADV, DATA with frozen skipped ops: the variants whose step differs most from the first order's).
    Every all-reduce of a 2-process step waits for both processes, which on shared cores costs more than
    the tiny step, so the test runs one variant per method."""
    specs: dict[str, dict[str, Any]] = {}
    for algorithm in list_methods():
        name, options = list(method_class(algorithm).bench_variants.items())[-1]
        specs[name] = {"algorithm": algorithm, **options, **OPTIONS.get(algorithm, {})}
    return specs


def _all_specs() -> dict[str, dict[str, Any]]:
    return variants() | {RESUMED: {"algorithm": "darts", "overrides": {"epochs": 1, "max_steps_per_epoch": 2}}}


def _job(params_file: Path, prepared: Path, method: str, out: Path, ctx: DistContext | None) -> SearchJob:
    params = load_params(params_file)
    params.search.analysis.hessian_every = 0
    return SearchJob(params=params, method=method, dataset="digits", seed=0, prepared_dir=prepared, out_dir=out,
                     progress=False, dist=ctx)


def _recorded_search(job: SearchJob, monkeypatch_target: Any, stop_at: int | None = None) -> dict[str, Any]:
    """`run_search(job)`, recording the method's state after every step (and stopping after `stop_at`)."""
    steps: list[dict[str, torch.Tensor]] = []
    real_step = loop.search_step

    def recording_step(method: Any, *args: Any, **kwargs: Any) -> Any:
        done = real_step(method, *args, **kwargs)
        steps.append({name: t.detach().clone() for name, t in method.state_dict().items()})
        if stop_at is not None and len(steps) == stop_at and (job.dist is None or job.dist.is_main):
            os.kill(os.getpid(), signal.SIGUSR1)  # the scheduler's warning, delivered to one process only
        return done

    monkeypatch_target.search_step = recording_step
    try:
        summary, state = run_search(job)
    finally:
        monkeypatch_target.search_step = real_step
    return {"steps": steps, "genotype": summary["genotype"], "history": state.history}


def _worker(rank: int, init_file: str, params_file: Path, prepared: Path, out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    ctx = DistContext(rank=rank, world_size=WORLD, device=torch.device("cpu"))
    try:
        results = {name: _recorded_search(_job(params_file, prepared, name, out / name, ctx), loop)
                   for name in _all_specs()}
        resumed_dir = out / "resumed"
        try:
            _recorded_search(_job(params_file, prepared, RESUMED, resumed_dir, ctx), loop, stop_at=STOP_AT_STEP)
            raise AssertionError("the stop request did not stop the search")
        except Preempted:
            pass
        results["resumed"] = _recorded_search(_job(params_file, prepared, RESUMED, resumed_dir, ctx), loop)
        torch.save(results, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("search_ddp")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prepared = prepare_digits(directory)
        params_file = tiny_params(directory, _all_specs(), **SEARCH)
        out = directory / "runs"
        # The 1-process oracle runs meanwhile: the pair spends much of its time waiting in collectives.
        pair = mp.spawn(_worker, args=(str(directory / "init"), params_file, prepared, out), nprocs=WORLD,
                        join=False)
        single = {name: _recorded_search(_job(params_file, prepared, name, directory / "single" / name, None), loop)
                  for name in variants()}
        while not pair.join():
            pass
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]
    return {"single": single, "ranks": ranks}


@pytest.mark.parametrize("name", sorted(variants()))
def test_two_processes_match_one_and_each_other_at_every_step(runs: dict[str, Any], name: str) -> None:
    single, ranks = runs["single"][name], [r[name] for r in runs["ranks"]]
    assert len(single["steps"]) == len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 2
    for step, (one, first, second) in enumerate(zip(single["steps"], ranks[0]["steps"], ranks[1]["steps"],
                                                    strict=True)):
        assert one.keys() == first.keys() == second.keys()
        for key in one:
            torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, equal_nan=True,
                                       msg=lambda m, k=key, s=step: f"{name} step {s}: ranks disagree on {k}: {m}")
            if one[key].is_floating_point():
                # Adam moves an entry by about its lr (3e-4) whatever the gradient's size, so an entry whose
                # gradient is near 0 (or, second order, a finite difference of two near-equal gradients) may
                # move by a visible fraction of a step on fp32 rounding alone; a missing reduction moves
                # entries by whole steps.
                torch.testing.assert_close(first[key], one[key], rtol=1e-3, atol=1e-4, equal_nan=True,
                                           msg=lambda m, k=key, s=step: f"{name} step {s} {k}: {m}")
            else:
                assert torch.equal(first[key], one[key]), f"{name} step {step}: sampled {key} differs from 1 process"
    assert ranks[0]["genotype"] == ranks[1]["genotype"] == single["genotype"]


def test_a_stop_on_one_rank_stops_both_and_the_resumed_search_matches_the_uninterrupted(runs: dict[str, Any]) -> None:
    for rank in runs["ranks"]:
        resumed, straight = rank["resumed"], rank[RESUMED]
        # The resumed run records only the steps after the stop; its end state must be bit-identical.
        assert len(resumed["steps"]) == len(straight["steps"]) - STOP_AT_STEP
        for key, value in straight["steps"][-1].items():
            assert torch.equal(resumed["steps"][-1][key], value), key
        assert resumed["genotype"] == straight["genotype"]
        assert _untimed(resumed["history"]) == _untimed(straight["history"])


def _untimed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != "epoch_time_s"} for row in history]
