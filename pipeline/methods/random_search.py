"""Random search: the baseline every differentiable method has to beat (DARTS' and DATA's tables).

N genotypes are drawn uniformly from the space (per node two distinct inputs, a uniform non-`none` op on
each). Each is then trained from freshly initialised weights for `train_epochs` short epochs, as the
supernet discretised to its one-hot weights (so only its ops run), with the same per-candidate cosine
learning-rate schedule, and scored by the validation accuracy the loop measures at the end of its last
epoch. The best-scoring candidate is the result.

Candidate k occupies search epochs [k * train_epochs, (k + 1) * train_epochs); the params schema requires
epochs = candidates x train_epochs. Candidates, scores and the current index are buffers, so a resumed
search continues with the same candidates.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.config import RandomMethod, SearchTraining
from pipeline.methods.base import SearchMethod, SearchSpace, StepContext, register_method
from pipeline.space.genotype import Genotype, num_edges
from pipeline.space.supernet import ArchWeights

CELLS = ("normal", "reduce")


def sample_codes(count: int, space: SearchSpace) -> torch.Tensor:
    """`count` uniform genotypes as a long tensor `[count, cell, node, pair, (op, input)]` (torch's RNG)."""
    ops = [i for i, op in enumerate(space.primitives) if op != "none"]
    codes = torch.zeros(count, len(CELLS), space.nodes, 2, 2, dtype=torch.long)
    for k in range(count):
        for c in range(len(CELLS)):
            for j in range(space.nodes):
                inputs = torch.randperm(j + 2)[:2]
                choices = torch.randint(len(ops), (2,))
                for pair in range(2):
                    codes[k, c, j, pair] = torch.tensor([ops[int(choices[pair])], int(inputs[pair])])
    return codes


def reset_weights(net: nn.Module) -> None:
    """Re-initialise every layer (and BN running statistics): each candidate trains from scratch."""
    for module in net.modules():
        if module is not net and hasattr(module, "reset_parameters"):
            module.reset_parameters()


@register_method("random")
class RandomSearch(SearchMethod):
    """No architecture parameters: the method's state is its candidate list and their scores."""

    config: RandomMethod

    def __init__(self, config: RandomMethod, space: SearchSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training)
        self.register_buffer("candidates", sample_codes(config.candidates, space))
        self.register_buffer("scores", torch.full((config.candidates,), math.nan))
        self.register_buffer("current", torch.zeros((), dtype=torch.long))
        offsets = torch.tensor([num_edges(j) for j in range(space.nodes)])
        self.register_buffer("node_offsets", offsets, persistent=False)

    # -- candidates -----------------------------------------------------------------------------------
    def genotype_of(self, index: int) -> Genotype:
        code = self.candidates[index].tolist()
        cells = [tuple(tuple((self.space.primitives[op], source) for op, source in node) for node in cell)
                 for cell in code]
        concat = tuple(range(2, self.space.nodes + 2))
        space = "darts" if "none" in self.space.primitives else "darts_no_none"
        return Genotype(cells[0], concat, cells[1], concat, search_space=space)

    def one_hot(self, index: int) -> ArchWeights:
        """The supernet discretised to candidate `index`: weight 1 on its pairs, exactly 0 elsewhere."""
        code = self.candidates[index]
        ops, sources = code[..., 0], code[..., 1]
        edges = self.node_offsets.view(1, -1, 1) + sources
        cells = torch.arange(len(CELLS), device=code.device).view(-1, 1, 1).expand_as(edges)
        weights = torch.zeros(len(CELLS), *self.space.shape, device=code.device)
        weights[cells, edges, ops] = 1.0
        return ArchWeights(weights[0], weights[1])

    def best_index(self) -> int:
        """The best-scoring candidate so far (the current one before any is scored)."""
        if torch.isnan(self.scores).all():
            return int(self.current)
        return int(torch.nan_to_num(self.scores, nan=-math.inf).argmax())

    # -- hooks ----------------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return []

    def forward_weights(self) -> ArchWeights:
        return self.one_hot(int(self.current))

    def mixing_probabilities(self) -> ArchWeights:
        return self.one_hot(self.best_index())

    def on_epoch_start(self, ctx: StepContext) -> None:
        """Switch candidate (from scratch) every train_epochs epochs; set its own cosine learning rate."""
        per = self.config.train_epochs
        index, local = divmod(ctx.epoch, per)
        if index >= self.config.candidates:
            raise ValueError(f"random search: epoch {ctx.epoch} is past {self.config.candidates} candidates x "
                             f"{per} train_epochs")
        self.current.fill_(index)
        if local == 0:
            reset_weights(ctx.net)
            ctx.w_optimizer.state.clear()
        w = self.training_settings.weights
        lr = w.lr_min + (w.lr - w.lr_min) * (1 + math.cos(math.pi * local / per)) / 2
        for group in ctx.w_optimizer.param_groups:
            group["lr"] = lr
        ctx.lr = lr

    def on_validation(self, epoch: int, valid_acc: float) -> None:
        if (epoch + 1) % self.config.train_epochs == 0:
            self.scores[int(self.current)] = valid_acc

    def epoch_metrics(self) -> dict[str, float]:
        return {"candidate": int(self.current), "candidate_valid_acc": float(self.scores[int(self.current)]),
                "best_candidate": self.best_index()}

    def derive(self) -> Genotype:
        return self.genotype_of(self.best_index())
