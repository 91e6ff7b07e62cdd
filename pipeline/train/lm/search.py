"""A registered search method driving the language-model loop's architecture, as train_search.py does.

Before every weight step: an architecture step (the method's own, first or second order, on the shared
`StepContext`) on the window of the search-validation stream that starts at the same row modulo its
length, `bptt` rows long, carrying that stream's own hidden state. The weight step mixes by the method's
weight-step weights (SDARTS perturbs them); validation and derivation use its evaluation and mixing
weights. The search-validation stream is batchified at the training batch size, as the released code
batchifies the validation split for its architecture steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline.analysis.hessian import batches_hessian_eigenvalue
from pipeline.data.text import batchify, evaluation_windows, window
from pipeline.data.text.batches import Window
from pipeline.methods import SearchMethod, StepContext
from pipeline.space.base import ArchWeights
from pipeline.space.rnn.step_net import TokenWindow, TokenWindowNet, flat_targets, window_batch


@dataclass(frozen=True)
class HessianSchedule:
    """search.analysis for a text search: every `every` epochs (0: never) the dominant Hessian eigenvalue of
    the validation loss w.r.t. the architecture, on the first `batches` bptt windows of the search-validation
    stream (each from a zero hidden state, so epochs compare), by `iterations` power-iteration steps."""

    every: int
    batches: int
    iterations: int


class MethodSearch:
    def __init__(self, method: SearchMethod, net: TokenWindowNet, valid_ids: torch.Tensor, batch_size: int,
                 bptt: int, a_optimizer: torch.optim.Optimizer | None, epochs: int,
                 hessian: HessianSchedule | None = None) -> None:
        self.method = method
        self.net = net
        self.device = next(net.parameters()).device
        self.search_valid = batchify(valid_ids, batch_size, "search-validation split").to(self.device)
        self.bptt = bptt
        self.a_optimizer = a_optimizer
        self.epochs = epochs
        self.hessian = hessian
        self.hidden_valid: torch.Tensor | None = None
        # One arch_weights.jsonl row per validated epoch; checkpointed, so a resumed search writes them all.
        self.arch_history: list[dict[str, Any]] = []
        self._ctx: StepContext | None = None

    @property
    def ctx(self) -> StepContext:
        if self._ctx is None:
            raise RuntimeError("MethodSearch.bind(optimizer) must be called before the first step")
        return self._ctx

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        """Share the loop's weight optimiser (second-order steps read its state; random search resets it)."""
        self._ctx = StepContext(net=self.net, criterion=nn.NLLLoss(), w_optimizer=optimizer,
                                a_optimizer=self.a_optimizer, epoch=0, epochs=self.epochs, lr=0.0, device=self.device)

    def on_epoch_start(self, epoch: int) -> None:
        self.ctx.epoch = epoch
        self.hidden_valid = None
        self.method.on_epoch_start(self.ctx)

    def architecture_step(self, epoch: int, where: Window, lr: float, train: TokenWindow,
                          targets: torch.Tensor) -> None:
        self.ctx.epoch, self.ctx.lr = epoch, lr
        if not self.method.updates_architecture(epoch):
            return
        rows = len(self.search_valid)
        start = where.start % (rows - 1)
        inputs, valid_targets = window(self.search_valid, Window(start, min(self.bptt, rows - 1 - start)))
        valid = TokenWindow(inputs, self.hidden_valid)
        self.method.architecture_step(self.ctx, (train, flat_targets(targets)), (valid, flat_targets(valid_targets)))
        self.hidden_valid = valid.final

    def weight_arch(self, train: TokenWindow, targets: torch.Tensor) -> ArchWeights:
        return self.method.weight_step_supernet_weights(self.ctx, (train, flat_targets(targets)))

    def eval_arch(self) -> ArchWeights:
        return self.method.eval_weights()

    def on_validation(self, epoch: int, valid_loss: float) -> dict[str, Any]:
        """Report the epoch's validation to the method (random search keeps the best candidate: it gets
        minus the loss, higher is better) and return the history columns of the search."""
        self.method.on_validation(epoch, -valid_loss)
        genotype = self.method.space.space.genotype_to_json(self.method.derive())
        probabilities = self.method.mixing_probabilities()
        self.arch_history.append({
            "epoch": epoch,
            "edge_ops": {spec.name: [list(ops) for ops in spec.edge_ops] for spec in self.method.space.cells},
            "weights": {cell: probabilities[cell].detach().cpu().double().tolist() for cell in probabilities},
            "genotype": genotype,
        })
        cells = {key: genotype[key] for key in ("recurrent", "concat")}  # as the image search's genotype column
        row = {"genotype": json.dumps(cells, separators=(",", ":")), **self.method.epoch_metrics()}
        # Random search has no architecture parameters, hence no Hessian (as in the image search loop).
        every = self.hessian.every if self.hessian else 0
        if every and self.method.arch_parameters() and (epoch + 1) % every == 0:
            row["hessian_eig"] = self.hessian_eigenvalue()
        return row

    def hessian_eigenvalue(self) -> float:
        assert self.hessian is not None
        windows = evaluation_windows(len(self.search_valid), self.bptt)[: self.hessian.batches]
        data = [window_batch(self.search_valid[where.start:where.start + where.length + 1]) for where in windows]
        return batches_hessian_eigenvalue(self.net, self.method, data, nn.NLLLoss(), self.device,
                                          iterations=self.hessian.iterations)

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method.state_dict(), "hidden_valid": self.hidden_valid,
                "arch_history": self.arch_history,
                "a_optimizer": None if self.a_optimizer is None else self.a_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method"])
        self.arch_history = list(state["arch_history"])
        hidden = state["hidden_valid"]
        self.hidden_valid = None if hidden is None else hidden.to(self.device)
        if self.a_optimizer is not None:
            self.a_optimizer.load_state_dict(state["a_optimizer"])
