"""The search loop every method shares.

Per step: the method's architecture step on a validation batch, then a weight step on a training batch
with the mixing weights the method chooses for it (SDARTS perturbs them). Per epoch: the cosine LR step,
validation of the supernet and of the derived child (the discretised supernet, no fine-tuning), analyses,
one history row, one line of architecture weights, and a checkpoint. SIGTERM/SIGUSR1 checkpoint mid-epoch
and stop; rerunning resumes exactly (data order, RNG states, optimiser and method state are all saved).

Under `torchrun` (`job.dist` with several processes) the search is data-parallel: each process takes
batch_size / N of every global batch (EpochSampler shards), its BatchNorms use the global batch's
statistics (pipeline/space/global_batch_norm.py), the weights' and architecture's gradients are averaged
(`DistContext.average`), and every random draw of a step comes from torch's global generator, seeded and
advanced alike on every process (augmentations have seeds of their own, pipeline/data/sample_seeds.py),
so the architecture and the method state stay identical on every process and equal to a 1-process
search's. Rank 0 alone writes checkpoints and calls `on_epoch_end`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pipeline.analysis.hessian import dominant_hessian_eigenvalue
from pipeline.checkpoint import (
    StopRequest,
    load_resumable,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pipeline.config import IMAGENET, Params, SearchTraining
from pipeline.data import build_dataset, cycle_batches, folder_dataset, get_dataset_info, load_splits, make_loader
from pipeline.data.sample_seeds import SampleSeededDataset
from pipeline.device import (
    choose_device,
    describe_device,
    peak_memory_mb,
    pin_threads,
    reset_peak_memory,
    seed_everything,
)
from pipeline.errors import NumericalError, PipelineError, Preempted
from pipeline.inputs import training_inputs
from pipeline.layout import search_slice
from pipeline.methods import SearchMethod, StepContext, create_method
from pipeline.provenance import params_sha256
from pipeline.search.drop_path import search_drop_path_prob
from pipeline.search.early_stop import eigenvalue_stop
from pipeline.search.metrics import accuracy_counts
from pipeline.search.optimizers import architecture_optimizer, weight_optimizer
from pipeline.search.step import mixed_precision, search_step
from pipeline.space.base import ArchWeights, BoundSpace
from pipeline.space.global_batch_norm import use_global_batch_norm
from pipeline.train.distributed import DistContext, per_process_batch

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass
class SearchJob:
    """One search: a method variant on a dataset with a seed, resumable from `out_dir`."""

    params: Params
    method: str
    dataset: str
    seed: int
    prepared_dir: Path
    out_dir: Path
    allow_nan_skip: int = 0
    restart_on_change: bool = False
    progress: bool = True
    on_epoch_end: EpochCallback | None = None
    # The processes of a torchrun launch (pipeline/train/distributed.py); None: one process on the
    # device `runtime.device` names.
    dist: DistContext | None = None

    def context(self) -> DistContext:
        return self.dist or DistContext(rank=0, world_size=1, device=choose_device(self.params.runtime.device))


@dataclass
class SearchState:
    """Everything that changes during a search besides module and optimiser tensors."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    valid_batches_seen: int = 0
    nan_skips: int = 0
    wall_time_s: float = 0.0
    # The running train loss/accuracy sums of the current epoch: a stop mid-epoch must carry them over,
    # or the resumed epoch's history row would average only the steps after the resume.
    epoch_totals: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    arch_history: list[dict[str, Any]] = field(default_factory=list)
    # Set when DARTS-ES stopped the search (pipeline/search/early_stop.py): a rerun must not continue it.
    early_stop: dict[str, Any] | None = None


@dataclass
class _Parts:
    device: torch.device
    net: nn.Module
    method: SearchMethod
    w_optimizer: torch.optim.Optimizer
    a_optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: torch.utils.data.DataLoader
    valid_loader: torch.utils.data.DataLoader
    criterion: nn.Module
    grad_clip: float
    dist: DistContext


def _build(job: SearchJob) -> _Parts:
    params = job.params
    settings = params.search_settings(job.method)
    method_cfg = params.method(job.method)
    dist = job.context()
    device = dist.device
    batch = per_process_batch(settings.batch_size, dist.world_size, "search.batch_size")
    pin_threads(params.runtime.threads)
    seed_everything(job.seed, params.runtime.deterministic)
    root = params.data.root_of(job.dataset)
    # A direct ImageNet search may run on the demo stand-in, which has its own classes.
    source = folder_dataset(root) if job.dataset == IMAGENET else job.dataset
    info = get_dataset_info(source)
    splits_file = job.prepared_dir / "splits.npz"
    splits = load_splits(splits_file)
    # Both halves come from the augmented training split, as in DARTS' released code: the architecture
    # step and the supernet's validation accuracy see the same distribution as the weight step.
    search_set = build_dataset(source, "train", root=root, augment=True, download=params.data.download,
                               image_size=settings.image_size, indices_file=splits_file)
    loader_args = {"batch_size": batch, "num_workers": params.data.num_workers, "rank": dist.rank,
                   "world_size": dist.world_size}
    train_set, valid_set = SampleSeededDataset(search_set), SampleSeededDataset(search_set)
    train_loader = make_loader(train_set, splits["search_train"], seed=job.seed, shuffle=True, drop_last=True,
                               **loader_args)
    valid_loader = make_loader(valid_set, splits["search_valid"], seed=job.seed + 10_000, shuffle=True,
                               drop_last=True, **loader_args)
    train_set.sampler, valid_set.sampler = train_loader.sampler, valid_loader.sampler
    space = BoundSpace.of(method_cfg.space, settings)
    method = create_method(method_cfg, space, settings)
    stem = {"stem": "imagenet"} if job.dataset == IMAGENET else {}
    net = space.space.build_supernet(settings, num_classes=info.num_classes, in_channels=info.in_channels,
                                     cells=space.cells, **stem, **method.supernet_options())
    if dist.distributed:
        use_global_batch_norm(net)
    net.to(device)
    method.to(device)
    if params.runtime.channels_last and device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    w = settings.weights
    w_optimizer = weight_optimizer(net.parameters(), w)
    scheduler = torch.optim.lr_scheduler.LambdaLR(w_optimizer, lambda epoch: weight_lr_at(epoch, settings) / w.lr)
    a_optimizer = architecture_optimizer(method.arch_parameters(), settings.arch)
    if a_optimizer is not None:
        # Every method's architecture update goes through this optimiser: averaging its gradients here
        # gives each process the global batch's architecture gradient, whatever the method computed.
        a_optimizer.register_step_pre_hook(
            lambda optimizer, args, kwargs: dist.average_gradients(
                p for group in optimizer.param_groups for p in group["params"]))
    return _Parts(device, net, method, w_optimizer, a_optimizer, scheduler, train_loader, valid_loader,
                  nn.CrossEntropyLoss(), settings.weights.grad_clip, dist)


def search_inputs(job: SearchJob) -> dict[str, str]:
    """The files a search reads (pipeline/inputs.py): prepare's splits and the dataset's source files."""
    root = job.params.data.root_of(job.dataset)
    source = folder_dataset(root) if job.dataset == IMAGENET else job.dataset
    return training_inputs(splits=job.prepared_dir / "splits.npz", dataset=source, root=root)


def weight_lr_at(epoch: int, settings: SearchTraining) -> float:
    """The weights' learning rate in `epoch`: cosine from lr to lr_min over the search, except during the
    linear warm-up, where the ImageNet search codes set lr * (epoch + 1) / warmup_epochs (of the base lr,
    not of the cosine value)."""
    w = settings.weights
    if epoch < w.warmup_epochs:
        return w.lr * (epoch + 1) / w.warmup_epochs
    return w.lr_min + (w.lr - w.lr_min) * (1 + math.cos(math.pi * epoch / settings.epochs)) / 2


def _autocast(params: Params, device: torch.device) -> Callable[[], Any]:
    """bf16 autocast on CUDA when asked (no loss scaling needed); a no-op on CPU."""
    if params.runtime.amp and device.type == "cuda":
        return mixed_precision(device)
    return contextlib.nullcontext


def _checkpoint_state(parts: _Parts, state: SearchState, config_slice: dict[str, Any],
                      inputs: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "search",
        "config": config_slice,
        "inputs": inputs,
        "net": parts.net.state_dict(),
        "method": parts.method.state_dict(),
        "w_optimizer": parts.w_optimizer.state_dict(),
        "a_optimizer": parts.a_optimizer.state_dict() if parts.a_optimizer else None,
        "scheduler": parts.scheduler.state_dict(),
        # Every process's own: each CUDA process draws from its own device's generator.
        "rng": parts.dist.gather(rng_state()),
        "state": state.__dict__,
    }


def _restore(parts: _Parts, saved: dict[str, Any]) -> SearchState:
    state = SearchState(**saved["state"])
    # A method may restructure itself (DrNAS widens and prunes) before its tensors fit again.
    parts.method.load_state_dict(saved["method"])
    parts.method.prepare_supernet_for_restore(parts.net, parts)
    parts.net.load_state_dict(saved["net"])
    parts.w_optimizer.load_state_dict(saved["w_optimizer"])
    if parts.a_optimizer is not None and saved["a_optimizer"] is not None:
        parts.a_optimizer.load_state_dict(saved["a_optimizer"])
    parts.scheduler.load_state_dict(saved["scheduler"])
    # Written by as many processes: the process count is part of the resume key (run_search's config_slice).
    set_rng_state(saved["rng"][parts.dist.rank])
    if not parts.dist.is_main:
        # The checkpoint holds the global sums of the interrupted epoch: rank 0 carries them on.
        state.epoch_totals = {"loss": 0.0, "correct": 0, "seen": 0}
    return state


def _position_valid(parts: _Parts, state: SearchState) -> Iterator[Any]:
    """A cycling validation iterator positioned after the `valid_batches_seen` batches already used."""
    sampler = parts.valid_loader.sampler
    sampler.set_epoch(0)
    per_pass = len(parts.valid_loader)  # batches in a full pass (measured at start position 0)
    sampler.set_epoch(state.valid_batches_seen // per_pass)
    sampler.set_start(state.valid_batches_seen % per_pass, parts.valid_loader.batch_size)
    return cycle_batches(parts.valid_loader)


def _check_finite(name: str, value: torch.Tensor, state: SearchState, job: SearchJob) -> bool:
    """True when finite; False when a bad batch may be skipped; raises otherwise."""
    if torch.isfinite(value).all():
        return True
    if state.nan_skips < job.allow_nan_skip:
        state.nan_skips += 1
        log.warning("non-finite %s at epoch %d step %d: batch skipped (%d/%d allowed)", name, state.epoch,
                    state.step_in_epoch, state.nan_skips, job.allow_nan_skip)
        return False
    raise NumericalError(
        f"non-finite {name} at epoch {state.epoch}, step {state.step_in_epoch} of the search "
        f"({job.dataset}/{job.method}/seed{job.seed}); the last good checkpoint in {job.out_dir} is kept. "
        f"Lower the learning rate, or pass --allow-nan-skip N to skip up to N bad batches."
    )


def _evaluate(parts: _Parts, weights: ArchWeights, max_steps: int, autocast: Callable[[], Any]) -> tuple[float, float]:
    """Loss and accuracy (%) of the supernet under `weights` on one pass of the validation half (every
    process's shard, summed)."""
    parts.net.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    sampler = parts.valid_loader.sampler
    saved = (sampler.epoch, sampler.start)
    sampler.set_epoch(0)
    with torch.no_grad():
        for step, (x, y) in enumerate(parts.valid_loader):
            if max_steps and step >= max_steps:
                break
            x, y = x.to(parts.device, non_blocking=True), y.to(parts.device, non_blocking=True)
            with autocast():
                logits = parts.net(x, weights).float()
            loss_sum += parts.criterion(logits, y).item() * len(y)
            hits, count = accuracy_counts(logits, y)
            correct, seen = correct + hits, seen + count
    sampler.epoch, sampler.start = saved
    parts.net.train()
    loss_sum, correct, seen = parts.dist.sum([loss_sum, correct, seen])
    return loss_sum / max(seen, 1), 100.0 * correct / max(seen, 1)


def run_search(job: SearchJob) -> tuple[dict[str, Any], SearchState]:
    """Run (or resume) one search; returns the summary (for summary.json) and the final state."""
    settings = job.params.search_settings(job.method)
    parts = _build(job)
    # The process count changes the data streams, hence the results: a checkpoint resumes only on as many.
    config_slice = search_slice(job.params, job.method) | {"dataset": job.dataset, "seed": job.seed,
                                                           "world_size": parts.dist.world_size}
    inputs = search_inputs(job)
    state = SearchState()
    saved = load_resumable(job.out_dir, config_slice, inputs, restart_on_change=job.restart_on_change,
                           may_modify=parts.dist.is_main)
    if saved is not None:
        state = _restore(parts, saved)
        if parts.dist.is_main:
            log.info("resuming %s at epoch %d step %d", job.out_dir, state.epoch, state.step_in_epoch)
    autocast = _autocast(job.params, parts.device)
    reset_peak_memory(parts.device)
    valid_batches = _position_valid(parts, state)
    max_steps = settings.max_steps_per_epoch
    steps_per_epoch = len(parts.train_loader) if not max_steps else min(max_steps, len(parts.train_loader))
    if parts.dist.is_main:
        log.info("search: global batch %d = %d process(es) x %d", settings.batch_size, parts.dist.world_size,
                 parts.train_loader.batch_size)
    analysis = job.params.search.analysis
    with StopRequest() as stop:
        while state.epoch < settings.epochs and state.early_stop is None:
            epoch_start = time.perf_counter()
            if settings.drop_path:  # params validation checked that the space's supernet has drop path
                parts.net.set_drop_path(search_drop_path_prob(state.epoch, settings.epochs, settings.drop_path))
            ctx = StepContext(net=parts.net, criterion=parts.criterion, w_optimizer=parts.w_optimizer,
                              a_optimizer=parts.a_optimizer, epoch=state.epoch, epochs=settings.epochs,
                              lr=parts.scheduler.get_last_lr()[0], device=parts.device,
                              global_step=state.global_step, autocast=autocast, average=parts.dist.average)
            if state.step_in_epoch == 0:
                parts.method.on_epoch_start(ctx)
                parts.w_optimizer = ctx.w_optimizer
                state.epoch_totals = {"loss": 0.0, "correct": 0, "seen": 0}
            sampler = parts.train_loader.sampler
            sampler.set_epoch(state.epoch)
            sampler.set_start(state.step_in_epoch, parts.train_loader.batch_size)
            totals = state.epoch_totals
            bar = tqdm(total=steps_per_epoch, initial=state.step_in_epoch,
                       disable=not (job.progress and parts.dist.is_main),
                       desc=f"search {job.method} seed{job.seed} epoch {state.epoch + 1}/{settings.epochs}",
                       leave=False)
            for x, y in parts.train_loader:
                if state.step_in_epoch >= steps_per_epoch:
                    break
                x, y = x.to(parts.device, non_blocking=True), y.to(parts.device, non_blocking=True)
                xv, yv = next(valid_batches)
                state.valid_batches_seen += 1
                xv, yv = xv.to(parts.device, non_blocking=True), yv.to(parts.device, non_blocking=True)
                ctx.global_step = state.global_step
                _step(parts, ctx, (x, y), (xv, yv), state, job, totals)
                state.step_in_epoch += 1
                state.global_step += 1
                bar.update(1)
                # One reduction: a process stopping alone would leave the others waiting in a collective.
                if parts.dist.sum([float(stop.requested is not None)])[0]:
                    bar.close()
                    # The steps kept in this checkpoint cost time too: summary.json reports the search's cost.
                    state.wall_time_s += time.perf_counter() - epoch_start
                    _reduce_totals(parts, totals)
                    _save(parts, job, _checkpoint_state(parts, state, config_slice, inputs))
                    raise Preempted(f"{stop.requested}: checkpoint saved at epoch {state.epoch} step "
                                    f"{state.step_in_epoch}; rerun the same command to resume")
            bar.close()
            parts.scheduler.step()
            state.wall_time_s += time.perf_counter() - epoch_start
            _reduce_totals(parts, totals)
            row, arch_row = _end_of_epoch(parts, job, state, ctx, totals, autocast, analysis, max_steps)
            row["epoch_time_s"] = round(time.perf_counter() - epoch_start, 3)
            state.history.append(row)
            state.arch_history.append(arch_row)
            state.early_stop = _early_stop(settings, state.history, job)
            state.epoch += 1
            state.step_in_epoch = 0
            _save(parts, job, _checkpoint_state(parts, state, config_slice, inputs))
            if job.on_epoch_end is not None and parts.dist.is_main:
                job.on_epoch_end(row, arch_row)
    return _summary(parts, job, state, settings.epochs), state


def _reduce_totals(parts: _Parts, totals: dict[str, Any]) -> None:
    """Replace the epoch's running sums by their sums over the processes (a resume gives them to rank 0)."""
    loss, correct, seen = parts.dist.sum([totals["loss"], totals["correct"], totals["seen"]])
    totals.update(loss=loss, correct=int(correct), seen=int(seen))


def _save(parts: _Parts, job: SearchJob, checkpoint: dict[str, Any]) -> None:
    """Rank 0 writes; the barrier keeps the others from exiting (and torchrun from killing rank 0) first."""
    if parts.dist.is_main:
        save_checkpoint(job.out_dir, checkpoint)
    parts.dist.barrier()


def _early_stop(settings: SearchTraining, history: list[dict[str, Any]], job: SearchJob) -> dict[str, Any] | None:
    """DARTS-ES' decision after the last epoch of `history` (None: go on, or no early stopping asked)."""
    rule = settings.early_stop
    if rule is None:
        return None
    if any("hessian_eig" not in row for row in history):
        raise PipelineError(f"search {job.dataset}/{job.method}: early_stop needs the Hessian eigenvalue of every "
                            "epoch, and this method has no architecture parameters to measure it on")
    stop = eigenvalue_stop([row["hessian_eig"] for row in history], window=rule.window, lag=rule.lag,
                           threshold=rule.threshold, start_epoch=rule.start_epoch)
    if stop is None:
        return None
    log.info("DARTS-ES: stopped after epoch %d, returning the architecture of epoch %d (ratio %.3f)",
             stop.stopped_after_epoch, stop.returned_epoch, stop.ratio)
    return asdict(stop)


def _step(parts: _Parts, ctx: StepContext, train: tuple[torch.Tensor, torch.Tensor],
          valid: tuple[torch.Tensor, torch.Tensor], state: SearchState, job: SearchJob,
          totals: dict[str, Any]) -> None:
    done = search_step(parts.method, ctx, train, valid, update_architecture=parts.method.updates_architecture(
        state.epoch), grad_clip=parts.grad_clip, finite=lambda what, value: _check_finite(what, value, state, job))
    if done is None:
        return
    logits, loss = done
    hits, count = accuracy_counts(logits, train[1])
    totals["loss"] += loss.item() * count
    totals["correct"] += hits
    totals["seen"] += count


def _end_of_epoch(parts: _Parts, job: SearchJob, state: SearchState, ctx: StepContext, totals: dict[str, Any],
                  autocast: Callable[[], Any], analysis: Any, max_steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    method = parts.method
    valid_loss, valid_acc = _evaluate(parts, method.eval_weights(), max_steps, autocast)
    method.on_validation(state.epoch, valid_acc)
    genotype = method.derive()
    space = method.space.space
    child = method.child_weights(space.discretise(genotype, method.space.cells).map(lambda w: w.to(parts.device)))
    _, child_acc = _evaluate(parts, child, max_steps, autocast)
    seen = max(totals["seen"], 1)
    row: dict[str, Any] = {
        "epoch": state.epoch,
        "lr": ctx.lr,
        "train_loss": totals["loss"] / seen,
        "train_acc": 100.0 * totals["correct"] / seen,
        "valid_loss": valid_loss,
        "valid_acc": valid_acc,
        "child_valid_acc": child_acc,
        "epoch_time_s": 0.0,
        "genotype": json.dumps(_cells_only(space.genotype_to_json(genotype)), separators=(",", ":")),
        **space.analyses(genotype),
        **method.epoch_metrics(),
    }
    # Random search has no architecture parameters, hence no Hessian to measure. DARTS-ES needs it every epoch.
    every = 1 if job.params.search_settings(job.method).early_stop is not None else analysis.hessian_every
    if every and method.arch_parameters() and (state.epoch + 1) % every == 0:
        eigenvalue = dominant_hessian_eigenvalue(
            parts.net, method, parts.valid_loader, parts.criterion, parts.device,
            batches=analysis.hessian_batches, iterations=analysis.hessian_iterations,
        )
        # Data-parallel: each process measures on its shard; the mean is the one every process keeps (and
        # DARTS-ES decides on), an estimate from N times the batches rather than the 1-process number.
        row["hessian_eig"] = parts.dist.sum([eigenvalue])[0] / parts.dist.world_size
    probs = method.mixing_probabilities()
    arch_row = {
        "epoch": state.epoch,
        "edge_ops": {spec.name: [list(ops) for ops in spec.edge_ops] for spec in method.space.cells},
        "weights": {cell: probs[cell].detach().cpu().double().tolist() for cell in probs},
        # The epoch's derived genotype: DARTS-ES returns an earlier epoch's architecture.
        "genotype": space.genotype_to_json(genotype),
    }
    return row, arch_row


def _cells_only(genotype_json: dict[str, Any]) -> dict[str, Any]:
    """The genotype's architecture for a history.csv cell: no space name, no provenance."""
    return {key: value for key, value in genotype_json.items() if key not in ("search_space", "provenance")}


def _summary(parts: _Parts, job: SearchJob, state: SearchState, epochs: int) -> dict[str, Any]:
    if state.early_stop is None:
        genotype = parts.method.space.space.genotype_to_json(parts.method.derive())
    else:
        genotype = state.arch_history[state.early_stop["returned_epoch"]]["genotype"]
    last = state.history[-1] if state.history else {}
    return {
        "wall_time_s": round(state.wall_time_s, 3),
        "device": describe_device(parts.device),
        "device_count": parts.dist.world_size,
        "peak_memory_mb": round(peak_memory_mb(parts.device), 1),
        "epochs": epochs,
        "steps": state.global_step,
        "nan_skips": state.nan_skips,
        "final_valid_acc": last.get("valid_acc", math.nan),
        "final_child_valid_acc": last.get("child_valid_acc", math.nan),
        "search_child_gap": last.get("valid_acc", math.nan) - last.get("child_valid_acc", math.nan),
        "genotype": genotype,
        "early_stop": state.early_stop,
        "method_state": _method_state_summary(parts.method),
        "params_sha256": params_sha256(search_slice(job.params, job.method)),
    }


def _method_state_summary(method: SearchMethod) -> dict[str, Any]:
    return {name: tensor.detach().cpu().double().tolist() for name, tensor in method.state_dict().items()
            if tensor.numel() <= 4096}
