"""The language-model training loop of the recurrent space (quark0/darts rnn/train.py and train_search.py).

Per step: a window of the batchified training stream (its length drawn as the released scripts do, the
learning rate scaled by drawn length / bptt for that step), the hidden state carried from the previous
window but detached, a search's architecture step (`search`, pipeline/train/lm/search.py), the weight
step under the search's weight-step mixing weights: NLL plus the activation (`alpha`)
and temporal (`beta`) regularisers of AWD-LSTM, backward, gradient-norm clip, SGD (or ASGD after the
switch). Per epoch: validation NLL (with the averaged weights once averaging), one history row, the
NT-ASGD trigger, the best weights so far (the ones the final test uses, as train.py reloads its best
model), and a checkpoint.

SIGTERM/SIGUSR1 checkpoint after the current step and stop; rerunning resumes bit for bit, mid-epoch
included: windows are a pure function of (seed, epoch), the carried hidden state and every RNG are saved.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.checkpoint import StopRequest, load_resumable, rng_state, save_checkpoint, set_rng_state
from pipeline.data.text import batchify, epoch_windows, window
from pipeline.data.text.batches import SequenceLength, Window
from pipeline.errors import NumericalError, Preempted
from pipeline.space.base import ArchWeights
from pipeline.space.rnn.model import LmOutput, RNNLanguageModel
from pipeline.space.rnn.step_net import TokenWindow
from pipeline.train.lm.evaluate import evaluate_nll, perplexity
from pipeline.train.lm.ntasgd import averaged_weights, averaging_optimizer, should_average

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LmSettings:
    """One training's optimisation. Defaults: DARTS' PTB evaluation (rnn/train.py); the search uses
    batch 256, weight decay 5e-7, `sequence_length="search"` and `averaging="off"` (train_search.py)."""

    epochs: int
    batch_size: int = 64
    eval_batch_size: int = 10
    bptt: int = 35
    lr: float = 20.0
    weight_decay: float = 8e-7
    grad_clip: float = 0.25
    sequence_length: SequenceLength = "evaluation"
    max_seq_len_delta: int = 20
    alpha: float = 0.0  # activation regularisation: alpha * mean(dropped outputs^2)
    beta: float = 1e-3  # temporal regularisation: beta * mean((h_t - h_{t-1})^2) of the raw outputs
    averaging: Literal["nt_asgd", "off"] = "nt_asgd"
    nonmono: int = 5
    max_steps_per_epoch: int = 0  # 0: the whole epoch; for smoke runs


@dataclass
class LmState:
    """Everything besides tensors of the model and optimiser that a resume needs."""

    epoch: int = 0
    step_in_epoch: int = 0
    averaging: bool = False
    nll_sum: float = 0.0  # this epoch's training NLL summed over tokens, so far
    tokens: int = 0
    valid_losses: list[float] = field(default_factory=list)  # SGD epochs' validation NLL (the trigger's input)
    best_valid_loss: float = float("inf")
    wall_time_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


class ArchitectureSearch(Protocol):
    """What the loop asks of a search (pipeline/train/lm/search.py, MethodSearch): stated here so that
    training an evaluation network imports no search method."""

    def bind(self, optimizer: torch.optim.Optimizer) -> None: ...

    def on_epoch_start(self, epoch: int) -> None: ...

    def architecture_step(self, epoch: int, where: Window, lr: float, train: TokenWindow,
                          targets: torch.Tensor) -> None: ...

    def weight_arch(self, train: TokenWindow, targets: torch.Tensor) -> ArchWeights: ...

    def eval_arch(self) -> ArchWeights: ...

    def on_validation(self, epoch: int, valid_loss: float) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class LmJob:
    """One resumable training run: of an evaluation network (`search` None), or of a search model whose
    architecture a method drives (`search`; `model` is then the language model inside its TokenWindowNet)."""

    kind: str
    settings: LmSettings
    model: RNNLanguageModel
    train_ids: torch.Tensor
    valid_ids: torch.Tensor
    seed: int
    out_dir: Path
    config: dict[str, Any]
    inputs: dict[str, str]
    restart_on_change: bool = False
    search: ArchitectureSearch | None = None
    on_epoch_end: Callable[[list[dict[str, Any]]], None] | None = None


@dataclass
class LmResult:
    state: LmState
    best_model: dict[str, torch.Tensor]  # the weights with the best validation loss (averaged once averaging)


def train_language_model(job: LmJob) -> LmResult:
    """Train (or resume) to `settings.epochs`; raises Preempted after checkpointing on SIGTERM/SIGUSR1."""
    settings = job.settings
    model = job.model
    device = next(model.parameters()).device
    train = batchify(job.train_ids, settings.batch_size, f"{job.kind} training split").to(device)
    valid = batchify(job.valid_ids, settings.eval_batch_size, f"{job.kind} validation split").to(device)
    optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr,
                                                       weight_decay=settings.weight_decay)
    state, hidden, best, optimizer = _resume(job, optimizer)
    if job.search is not None:
        job.search.bind(optimizer)
    with StopRequest() as stop:
        while state.epoch < settings.epochs:
            started = time.perf_counter()
            if job.search is not None and state.step_in_epoch == 0:
                job.search.on_epoch_start(state.epoch)
            hidden = _train_epoch(job, train, optimizer, state, hidden, best, stop, started)
            optimizer, best = _finish_epoch(job, valid, optimizer, state, best, started)
            hidden = None
    return LmResult(state=state, best_model=best)


def _train_epoch(job: LmJob, train: torch.Tensor, optimizer: torch.optim.Optimizer, state: LmState,
                 hidden: torch.Tensor | None, best: dict[str, torch.Tensor], stop: StopRequest,
                 started: float) -> torch.Tensor:
    settings, model = job.settings, job.model
    windows = epoch_windows(len(train), settings.bptt, settings.sequence_length, job.seed, state.epoch,
                            settings.max_seq_len_delta)
    if settings.max_steps_per_epoch:
        windows = windows[: settings.max_steps_per_epoch]
    if hidden is None:
        hidden = model.init_hidden(settings.batch_size)
    for where in windows[state.step_in_epoch:]:
        lr = settings.lr * where.lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        inputs, targets = window(train, where)
        arch = None
        if job.search is not None:
            train_window = TokenWindow(inputs, hidden)
            job.search.architecture_step(state.epoch, where, lr, train_window, targets)
            arch = job.search.weight_arch(train_window, targets)
        out = model(inputs, arch, hidden)
        raw = F.nll_loss(out.log_probs.reshape(-1, out.log_probs.shape[-1]), targets.reshape(-1))
        if not torch.isfinite(raw):
            raise NumericalError(f"non-finite training loss at epoch {state.epoch}, step {state.step_in_epoch} of "
                                 f"{job.kind} (seed {job.seed}); the last good checkpoint in {job.out_dir} is kept. "
                                 f"Lower the learning rate.")
        optimizer.zero_grad(set_to_none=True)
        (raw + _regularisers(out, settings)).backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        hidden = out.hidden.detach()  # the next window continues the text, without backpropagating into this one
        state.nll_sum += raw.item() * targets.numel()
        state.tokens += targets.numel()
        state.step_in_epoch += 1
        if stop.requested:
            state.wall_time_s += time.perf_counter() - started
            _save(job, optimizer, state, hidden, best)
            raise Preempted(f"{stop.requested}: checkpoint saved at epoch {state.epoch} step {state.step_in_epoch}; "
                            f"rerun the same command to resume")
    return hidden


def _regularisers(out: LmOutput, settings: LmSettings) -> torch.Tensor:
    extra = out.log_probs.new_zeros(())
    if settings.alpha:
        extra = extra + settings.alpha * out.dropped_outputs.pow(2).mean()
    if settings.beta:
        extra = extra + settings.beta * (out.raw_outputs[1:] - out.raw_outputs[:-1]).pow(2).mean()
    return extra


def _finish_epoch(job: LmJob, valid: torch.Tensor, optimizer: torch.optim.Optimizer, state: LmState,
                  best: dict[str, torch.Tensor], started: float
                  ) -> tuple[torch.optim.Optimizer, dict[str, torch.Tensor]]:
    """Validate, record the epoch, maybe switch to averaging; returns the optimiser for the next epoch
    (a new ASGD after the switch) and the best weights so far."""
    settings, model = job.settings, job.model
    with averaged_weights(model, optimizer):
        valid_loss = evaluate_nll(model, valid, settings.bptt, None if job.search is None else job.search.eval_arch())
        if valid_loss < state.best_valid_loss:
            state.best_valid_loss = valid_loss
            best = copy.deepcopy(model.state_dict())
    train_loss = state.nll_sum / max(state.tokens, 1)
    elapsed = time.perf_counter() - started
    state.wall_time_s += elapsed
    state.history.append({
        "epoch": state.epoch, "lr": settings.lr, "averaging": int(state.averaging),
        "train_loss": train_loss, "train_ppl": perplexity(train_loss),
        "valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss), "epoch_time_s": round(elapsed, 3),
        **({} if job.search is None else job.search.on_validation(state.epoch, valid_loss)),
    })
    if settings.averaging == "nt_asgd" and not state.averaging:
        if should_average(state.valid_losses, valid_loss, settings.nonmono):
            log.info("%s epoch %d: validation stopped improving, switching to averaged SGD", job.kind, state.epoch)
            state.averaging = True
            optimizer = averaging_optimizer(list(model.parameters()), settings.lr, settings.weight_decay)
        else:
            state.valid_losses.append(valid_loss)
    state.epoch += 1
    state.step_in_epoch, state.nll_sum, state.tokens = 0, 0.0, 0
    _save(job, optimizer, state, None, best)
    log.info("%s epoch %d/%d: train ppl %.2f, valid ppl %.2f (%.1f s)", job.kind, state.epoch, settings.epochs,
             perplexity(train_loss), perplexity(valid_loss), elapsed)
    if job.on_epoch_end is not None:
        job.on_epoch_end(state.history)
    return optimizer, best


def _save(job: LmJob, optimizer: torch.optim.Optimizer, state: LmState, hidden: torch.Tensor | None,
          best: dict[str, torch.Tensor]) -> None:
    save_checkpoint(job.out_dir, {
        "kind": job.kind,
        "config": job.config,
        "inputs": job.inputs,
        "model": job.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "hidden": hidden,
        "best_model": best,
        "search": None if job.search is None else job.search.state_dict(),
        "rng": rng_state(),
        "state": asdict(state),
    })


def _resume(job: LmJob, optimizer: torch.optim.Optimizer) -> tuple[LmState, torch.Tensor | None,
                                                                   dict[str, torch.Tensor], torch.optim.Optimizer]:
    saved = load_resumable(job.out_dir, job.config, job.inputs, restart_on_change=job.restart_on_change)
    if saved is None:
        return LmState(), None, copy.deepcopy(job.model.state_dict()), optimizer
    state = LmState(**saved["state"])
    job.model.load_state_dict(saved["model"])
    if state.averaging:
        optimizer = averaging_optimizer(list(job.model.parameters()), job.settings.lr, job.settings.weight_decay)
    optimizer.load_state_dict(saved["optimizer"])
    if job.search is not None:
        job.search.load_state_dict(saved["search"])
    set_rng_state(saved["rng"])
    log.info("resuming %s at epoch %d step %d", job.out_dir, state.epoch, state.step_in_epoch)
    hidden = saved["hidden"]
    if hidden is not None:
        hidden = hidden.to(next(job.model.parameters()).device)
    return state, hidden, saved["best_model"], optimizer
