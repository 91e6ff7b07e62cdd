"""Every registered method: two search steps on a tiny supernet, finite throughout, a valid genotype."""

from __future__ import annotations

import pytest
import torch
from space_support import bound

from pipeline.methods import create_method, list_methods, method_class
from pipeline.space.genotype import genotype_from_dict, genotype_to_dict
from pipeline.stages.bench import build_harness

# algorithm name -> its options class, as registered with the method
CONFIG_CLASSES = {algorithm: method_class(algorithm).options for algorithm in list_methods()}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("algorithm", list_methods())
def test_method_runs_two_steps_and_derives_a_valid_genotype(algorithm):
    torch.manual_seed(0)
    config = CONFIG_CLASSES[algorithm](algorithm=algorithm)
    harness = build_harness(config, layers=3, channels=4, batch=2, image_size=8)
    method = harness.method
    for _ in range(2):
        assert torch.isfinite(harness.step())
        for param in method.arch_parameters():
            assert bool(torch.isfinite(param).all())
    for weights in (method.forward_weights(), method.eval_weights(), method.mixing_probabilities()):
        assert weights["normal"].shape == weights["reduce"].shape == bound(config.space).cells[0].shape
        assert bool(torch.isfinite(weights["normal"]).all() and torch.isfinite(weights["reduce"]).all())
    with torch.no_grad():
        assert bool(torch.isfinite(harness.net(harness.valid[0], method.eval_weights())).all())
    genotype = method.derive()
    assert genotype_from_dict(genotype_to_dict(genotype)) == genotype
    assert genotype.nodes == 4
    assert all(isinstance(value, int | float) for value in method.epoch_metrics().values())
    # What a checkpoint holds is enough to rebuild the method's state in a fresh instance.
    fresh = create_method(config, method.space, method.training_settings)
    fresh.load_state_dict(method.state_dict())
    assert fresh.derive() == genotype
