"""`search.recompute`: each cell keeps only its inputs for backward and is recomputed there.

Equal numbers for every method are checked with the fast supernet's whole-step test
(tests/test_fast_supernet.py). Here: that the memory kept for backward really shrinks (every byte the
autograd graph saves is counted through saved-tensor hooks, with and without recomputation), that random
draws inside a cell (drop path, S4's `noise` op) repeat exactly when the cell is recomputed, and that a
space whose supernet cannot recompute is refused at validation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from space_support import kept_tensors

from pipeline.config import ConfigError, params_from_dict
from pipeline.stages.bench import Harness, bench_variants, build_harness

pytestmark = pytest.mark.usefixtures("one_thread")


def harness(recompute: bool, space: str = "darts") -> Harness:
    torch.manual_seed(0)
    config = bench_variants()["darts_1st"].model_copy(update={"space": space})
    return build_harness(config, layers=5, channels=4, batch=4, image_size=8, recompute=recompute)


def saved_bytes(h: Harness) -> int:
    """Bytes of every tensor the autograd graph of one architecture loss keeps for its backward pass."""
    with kept_tensors() as kept:
        h.method.arch_loss(h.ctx, h.valid)
    return sum(tensor.numel() * tensor.element_size() for tensor in kept)


def test_recomputation_keeps_a_small_fraction_of_the_activations():
    plain, recomputed = saved_bytes(harness(False)), saved_bytes(harness(True))
    # Kept with recomputation: the stem's, each cell's inputs and mixing weights, and the classifier's.
    assert recomputed < plain / 10, (recomputed, plain)


def test_random_draws_inside_a_cell_repeat_when_it_is_recomputed():
    """S4 (noise op) with drop path: the same gradients with and without recomputation (fp64)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        grads = []
        for recompute in (False, True):
            h = harness(recompute, space="s4")
            h.net.set_drop_path(0.3)
            torch.manual_seed(5)
            loss = h.method.arch_loss(h.ctx, h.valid)
            inputs = [*h.net.parameters(), *h.method.arch_parameters()]
            grads.append(torch.autograd.grad(loss, inputs, allow_unused=True))
    finally:
        torch.set_default_dtype(previous)
    for plain, recomputed in zip(*grads, strict=True):
        assert (plain is None) == (recomputed is None)
        if plain is not None:
            torch.testing.assert_close(recomputed, plain, rtol=1e-12, atol=1e-14)


def test_a_space_whose_supernet_cannot_recompute_is_refused():
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    raw["search"]["methods"]["darts_1st_nb201"].setdefault("overrides", {})["recompute"] = True
    with pytest.raises(ConfigError, match=r"search.methods.darts_1st_nb201: search.recompute is true, but the "
                                          r"supernet of space 'nb201' cannot recompute its cells"):
        params_from_dict(raw)
