"""The supervised training loop of the evaluation networks, shared by retrain and transfer.

Per step: forward (bf16 autocast on CUDA when asked), cross-entropy (with label smoothing for transfer)
plus the weighted auxiliary loss, a finiteness check, backward, grad-norm clip and an SGD step. Per epoch:
the scheduled learning rate and drop-path probability, one pass over this process's training shard
(capped by max_steps_per_epoch), evaluation on the test split, one history row and a checkpoint.
SIGTERM/SIGUSR1 checkpoint after the current step and stop; rerunning resumes exactly, mid-epoch included:
the sampler skips the batches already seen and every RNG (one per process under DDP) is restored.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.checkpoint import (
    StopRequest,
    load_resumable,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pipeline.config import RuntimeConfig
from pipeline.data import make_loader
from pipeline.device import pin_threads, seed_everything
from pipeline.errors import DataError, NumericalError, Preempted
from pipeline.train.distributed import DistContext, per_process_batch, rank_seed
from pipeline.train.schedule import LrSchedule

log = logging.getLogger(__name__)

EpochCallback = Callable[[list[dict[str, Any]]], None]


@dataclass(frozen=True)
class TrainSettings:
    """The optimisation of one evaluation training; retrain and transfer fill it from their sections.

    `batch_size` is the global batch of one optimiser step, whatever the number of processes.
    """

    epochs: int
    batch_size: int
    schedule: LrSchedule
    momentum: float
    weight_decay: float
    grad_clip: float
    auxiliary_weight: float
    label_smoothing: float = 0.0
    drop_path: float = 0.0
    max_steps_per_epoch: int = 0
    top5: bool = False
    nesterov: bool = False


@dataclass
class TrainJob:
    """One training run, resumable from the checkpoint in `out_dir`.

    `build_model` is called after seeding, so the seed fixes the initial weights. `config` and `inputs`
    (fingerprints of the files the stage reads, pipeline/inputs.py) are the resume key the checkpoint
    records and a resume must match. `on_epoch_end` receives the whole history on rank 0.
    """

    kind: str
    settings: TrainSettings
    build_model: Callable[[], nn.Module]
    train_set: Dataset
    test_set: Dataset
    seed: int
    out_dir: Path
    config: dict[str, Any]
    inputs: dict[str, str]
    runtime: RuntimeConfig
    num_workers: int = 0
    allow_nan_skip: int = 0
    restart_on_change: bool = False
    progress: bool = True
    on_epoch_end: EpochCallback | None = None


@dataclass
class Totals:
    """Running sums of a training epoch (this process's, except after a resume, see `TrainState`)."""

    loss: float = 0.0
    correct: float = 0.0
    seen: float = 0.0


@dataclass
class TrainState:
    """Everything besides module and optimiser tensors that a resume needs.

    `partial` holds the global sums of an epoch interrupted by a stop request; on resume rank 0 starts
    from them and the other ranks from zero, so the epoch's reduced sums come out as if never stopped.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    samples_seen: int = 0
    nan_skips: int = 0
    wall_time_s: float = 0.0
    epoch_time_s: float = 0.0
    partial: dict[str, float] = field(default_factory=lambda: asdict(Totals()))
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    """The trained (unwrapped) model on its device and the final state."""

    model: nn.Module
    state: TrainState


@dataclass
class _Run:
    job: TrainJob
    ctx: DistContext
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: DataLoader
    test_loader: DataLoader
    batch_per_process: int
    steps_per_epoch: int
    channels_last: bool
    autocast: Callable[[], Any]
    criterion: nn.Module


def train(job: TrainJob, ctx: DistContext) -> TrainResult:
    """Run (or resume, or, when already finished, just reload) one training; every rank calls this."""
    run, state = _setup(job, ctx)
    with StopRequest() as stop:
        while state.epoch < job.settings.epochs:
            started = time.perf_counter()
            totals = _train_epoch(run, state, stop, started)
            _finish_epoch(run, state, totals, started)
    return TrainResult(model=run.model, state=state)


def _setup(job: TrainJob, ctx: DistContext) -> tuple[_Run, TrainState]:
    settings = job.settings
    batch = per_process_batch(settings.batch_size, ctx.world_size, f"{job.kind}.batch_size")
    if ctx.is_main:
        log.info("%s: global batch %d = %d process(es) x %d", job.kind, settings.batch_size, ctx.world_size, batch)
    train_loader, test_loader = _loaders(job, ctx, batch)
    full = train_loader.sampler.per_rank // batch
    if full == 0:
        raise DataError(f"{job.kind}.batch_size {settings.batch_size} ({batch} per process) exceeds the "
                        f"{train_loader.sampler.per_rank} training samples of each of the {ctx.world_size} "
                        "process(es)")
    pin_threads(job.runtime.threads)
    seed_everything(job.seed, job.runtime.deterministic)
    model = job.build_model().to(ctx.device)
    channels_last = job.runtime.channels_last and ctx.device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if ctx.rank:
        # Same initial weights everywhere, but each process draws its own augmentations and drop paths.
        seed_everything(rank_seed(job.seed, ctx.rank), job.runtime.deterministic)
    optimizer = make_optimizer(model, settings)
    state = _resume(job, ctx, model, optimizer)
    net: nn.Module = model
    if ctx.distributed:
        net = DistributedDataParallel(model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    use_amp = job.runtime.amp and ctx.device.type == "cuda"
    run = _Run(
        job=job, ctx=ctx, model=model, net=net, optimizer=optimizer, train_loader=train_loader,
        test_loader=test_loader, batch_per_process=batch,
        steps_per_epoch=min(full, settings.max_steps_per_epoch) if settings.max_steps_per_epoch else full,
        channels_last=channels_last,
        autocast=(lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext,
        criterion=nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing),
    )
    return run, state


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.SGD:
    """SGD with the settings' momentum (Nesterov or plain) and weight decay, at the schedule's first lr."""
    return torch.optim.SGD(model.parameters(), lr=settings.schedule.lr, momentum=settings.momentum,
                           weight_decay=settings.weight_decay, nesterov=settings.nesterov)


def _resume(job: TrainJob, ctx: DistContext, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
    """Every rank loads the same checkpoint (DDP's first broadcast would fix weights, not RNGs or state)."""
    saved = load_resumable(job.out_dir, job.config, job.inputs, restart_on_change=job.restart_on_change,
                           may_modify=ctx.rank == 0)
    if saved is None:
        return TrainState()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    set_rng_state(saved["rng"][ctx.rank])
    state = TrainState(**saved["state"])
    if ctx.is_main:
        log.info("resuming %s at epoch %d step %d", job.out_dir, state.epoch, state.step_in_epoch)
    else:
        state.partial = asdict(Totals())
    return state


def _loaders(job: TrainJob, ctx: DistContext, batch_size: int) -> tuple[DataLoader, DataLoader]:
    # drop_last: a final batch of one sample would break BatchNorm in training mode; the dropped few
    # samples are reshuffled into the next epoch.
    train_loader = make_loader(job.train_set, np.arange(len(job.train_set)), batch_size=batch_size,
                               seed=job.seed, shuffle=True, num_workers=job.num_workers, drop_last=True,
                               rank=ctx.rank, world_size=ctx.world_size)
    # Disjoint, unpadded evaluation shards count every test sample exactly once. Their lengths may differ
    # by one batch, which is harmless: evaluation runs the unwrapped model, without collectives per batch.
    test_indices = np.arange(len(job.test_set))[ctx.rank :: ctx.world_size]
    test_loader = make_loader(job.test_set, test_indices, batch_size=batch_size, seed=job.seed, shuffle=False,
                              num_workers=job.num_workers)
    return train_loader, test_loader


def _train_epoch(run: _Run, state: TrainState, stop: StopRequest, started: float) -> Totals:
    settings = run.job.settings
    lr = settings.schedule.at(state.epoch)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.model.drop_path_prob = settings.drop_path * state.epoch / settings.epochs
    sampler = run.train_loader.sampler
    sampler.set_epoch(state.epoch)
    sampler.set_start(state.step_in_epoch, run.batch_per_process)
    totals = Totals(**state.partial)
    run.net.train()
    bar = tqdm(total=run.steps_per_epoch, initial=state.step_in_epoch, leave=False,
               disable=not (run.job.progress and run.ctx.is_main),
               desc=f"{run.job.kind} seed{run.job.seed} epoch {state.epoch + 1}/{settings.epochs}")
    # islice, not a break inside the loop: fetching one batch too many would draw augmentation randomness
    # that a run resumed at the epoch's last step does not draw.
    for x, y in itertools.islice(run.train_loader, run.steps_per_epoch - state.step_in_epoch):
        stopping = _step(run, state, stop, x, y, totals)
        state.step_in_epoch += 1
        bar.update(1)
        if stopping:
            bar.close()
            state.partial = dict(zip(("loss", "correct", "seen"),
                                     run.ctx.sum([totals.loss, totals.correct, totals.seen]), strict=True))
            elapsed = time.perf_counter() - started
            state.wall_time_s += elapsed
            state.epoch_time_s += elapsed
            _save(run, state)
            raise Preempted(f"{stop.requested or 'stop requested'}: checkpoint saved at epoch {state.epoch} "
                            f"step {state.step_in_epoch}; rerun the same command to resume")
    bar.close()
    return totals


def _step(run: _Run, state: TrainState, stop: StopRequest, x: torch.Tensor, y: torch.Tensor,
          totals: Totals) -> bool:
    """One optimisation step; returns whether every process is to checkpoint and stop after it."""
    settings = run.job.settings
    x, y = x.to(run.ctx.device, non_blocking=True), y.to(run.ctx.device, non_blocking=True)
    if run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with run.autocast():
        logits, aux_logits = run.net(x)
    logits = logits.float()
    loss = run.criterion(logits, y)
    if aux_logits is not None:
        loss = loss + settings.auxiliary_weight * run.criterion(aux_logits.float(), y)
    # One reduction decides both for all processes: a rank that skipped a batch or stopped alone would
    # leave the others waiting in DDP's gradient all-reduce forever.
    nonfinite, stopping = run.ctx.sum([float(not torch.isfinite(loss).item()), float(stop.requested is not None)])
    if nonfinite:
        _skip_or_raise(run, state)
        return stopping > 0
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(run.model.parameters(), settings.grad_clip)
    run.optimizer.step()
    totals.loss += loss.item() * len(y)
    totals.correct += int((logits.detach().argmax(1) == y).sum())
    totals.seen += len(y)
    return stopping > 0


def _skip_or_raise(run: _Run, state: TrainState) -> None:
    job = run.job
    if state.nan_skips < job.allow_nan_skip:
        state.nan_skips += 1
        log.warning("non-finite loss at epoch %d step %d: batch skipped (%d/%d allowed)", state.epoch,
                    state.step_in_epoch, state.nan_skips, job.allow_nan_skip)
        return
    raise NumericalError(
        f"non-finite training loss at epoch {state.epoch}, step {state.step_in_epoch} of {job.kind} "
        f"(seed {job.seed}); the last good checkpoint in {job.out_dir} is kept. Lower the learning rate, "
        f"or pass --allow-nan-skip N to skip up to N bad batches."
    )


def _finish_epoch(run: _Run, state: TrainState, totals: Totals, started: float) -> None:
    """Reduce the epoch's sums, evaluate, append the history row and checkpoint."""
    loss_sum, correct, seen = run.ctx.sum([totals.loss, totals.correct, totals.seen])
    run.ctx.broadcast_buffers(run.model)
    test = _evaluate(run)
    if not run.job.settings.top5:
        del test["test_top5"]
    state.samples_seen += int(seen)
    elapsed = time.perf_counter() - started
    state.wall_time_s += elapsed
    row: dict[str, Any] = {
        "epoch": state.epoch,
        "lr": run.optimizer.param_groups[0]["lr"],
        "drop_path_prob": run.model.drop_path_prob,
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": 100.0 * correct / max(seen, 1),
        **test,
        "epoch_time_s": round(state.epoch_time_s + elapsed, 3),
        "samples_seen": state.samples_seen,
    }
    state.history.append(row)
    state.epoch += 1
    state.step_in_epoch = 0
    state.epoch_time_s = 0.0
    state.partial = asdict(Totals())
    _save(run, state)
    if run.ctx.is_main:
        log.info("%s epoch %d/%d: train acc %.2f%%, test acc %.2f%% (%.1f s)", run.job.kind, state.epoch,
                 run.job.settings.epochs, row["train_acc"], row["test_acc"], row["epoch_time_s"])
        if run.job.on_epoch_end is not None:
            run.job.on_epoch_end(state.history)


def _evaluate(run: _Run) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy (%) on the whole test split, summed over the processes' shards."""
    model = run.model
    model.eval()
    loss_sum, top1, top5, seen = 0.0, 0, 0, 0
    with torch.no_grad():
        for x, y in run.test_loader:
            x, y = x.to(run.ctx.device, non_blocking=True), y.to(run.ctx.device, non_blocking=True)
            if run.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with run.autocast():
                logits, _ = model(x)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
            top1 += int(hits[:, 0].sum())
            top5 += int(hits.any(dim=1).sum())
            seen += len(y)
    model.train()
    loss_sum, top1, top5, seen = run.ctx.sum([loss_sum, top1, top5, seen])
    return {"test_loss": loss_sum / seen, "test_acc": 100.0 * top1 / seen, "test_top5": 100.0 * top5 / seen,
            "test_samples": int(seen)}


def _save(run: _Run, state: TrainState) -> None:
    """Rank 0 writes; the barrier keeps the others from exiting (and torchrun from killing rank 0) first."""
    rngs = run.ctx.gather(rng_state())
    if run.ctx.is_main:
        save_checkpoint(run.job.out_dir, {
            "kind": run.job.kind,
            "config": run.job.config,
            "inputs": run.job.inputs,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "rng": rngs,
            "state": asdict(state),
        })
    run.ctx.barrier()
