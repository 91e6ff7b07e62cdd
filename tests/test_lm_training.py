"""Language-model training: the NT-ASGD trigger, perplexity, and an exact mid-epoch resume."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest
import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.config import SearchTraining
from pipeline.data.text import batchify, epoch_windows
from pipeline.errors import Preempted
from pipeline.methods import create_method
from pipeline.methods.darts import DartsMethod
from pipeline.space.base import BoundSpace
from pipeline.space.rnn.build import build_network, build_search_model
from pipeline.space.rnn.genotype import RecurrentGenotype
from pipeline.space.rnn.model import Dropouts
from pipeline.space.rnn.settings import RnnSettings
from pipeline.space.rnn.step_net import TokenWindowNet
from pipeline.train.lm import LmJob, LmSettings, evaluate_nll, perplexity, should_average, train_language_model
from pipeline.train.lm.ntasgd import averaged_weights, averaging_optimizer
from pipeline.train.lm.search import MethodSearch

TWO_NODES = RecurrentGenotype(recurrent=(("tanh", 0), ("sigmoid", 1)), concat=(1, 2))
VOCAB = 12


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Bit-exact comparisons between runs of this process need one fixed thread count."""


# ------------------------------------------------------------------------------------------------ NT-ASGD


def test_nt_asgd_switches_only_when_worse_than_the_best_before_the_last_nonmono_epochs() -> None:
    # nonmono = 2: compare with the best of all but the last two earlier epochs.
    assert not should_average([5.0, 4.0], 9.0, 2), "needs more than nonmono earlier epochs"
    assert not should_average([5.0, 4.0, 3.0], 4.9, 2), "4.9 still beats min([5.0])"
    assert should_average([5.0, 4.0, 3.0], 5.1, 2), "5.1 is worse than min([5.0])"
    # The last two (3.5, 3.6) are excused; 3.4 beats both of them but not the older best 3.0.
    assert should_average([5.0, 4.0, 3.0, 3.5, 3.6], 3.4, 2)
    assert not should_average([5.0, 4.0, 3.0, 3.5, 3.6], 2.9, 2), "a new best never switches"
    with pytest.raises(ValueError, match="nonmono"):
        should_average([1.0], 2.0, 0)


def test_averaged_weights_are_the_mean_of_the_iterates_after_the_first_step_since_the_switch() -> None:
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    optimizer = averaging_optimizer(list(layer.parameters()), lr=0.1, weight_decay=0.0)
    # d(w * 1)/dw = 1: iterates 0.9, 0.8, 0.7. PyTorch's ASGD (then as now) weights the k-th iterate by
    # mu = 1 / max(1, k - 1 - t0), so with t0 = 0 the second iterate restarts the mean: (0.8 + 0.7) / 2.
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.ones(1, 1)).sum().backward()
        optimizer.step()
    with averaged_weights(layer, optimizer):
        assert math.isclose(layer.weight.item(), 0.75, rel_tol=1e-6)
    assert math.isclose(layer.weight.item(), 0.7, rel_tol=1e-6)


# ------------------------------------------------------------------------------------------------ perplexity


def test_a_uniform_model_has_perplexity_equal_to_the_vocabulary_size() -> None:
    model = build_network(TWO_NODES, VOCAB, 4, Dropouts())
    with torch.no_grad():
        model.embedding.zero_()  # tied decoder: every logit is the zero bias, so p = 1 / VOCAB
    source = batchify(torch.randint(0, VOCAB, (103,)), 3)
    assert math.isclose(perplexity(evaluate_nll(model, source, bptt=5)), VOCAB, rel_tol=1e-6)


def test_windowed_evaluation_is_the_mean_nll_of_one_pass_over_the_whole_stream() -> None:
    torch.manual_seed(0)
    model = build_network(TWO_NODES, VOCAB, 4, Dropouts()).eval()
    source = batchify(torch.randint(0, VOCAB, (62,)), 2)  # 31 rows: windows of 4 rows and a last one of 2
    with torch.no_grad():
        log_probs = model(source[:-1]).log_probs  # zero initial state, as evaluation starts
    by_hand = -log_probs.gather(-1, source[1:, :, None]).mean().item()
    assert math.isclose(evaluate_nll(model, source, bptt=4), by_hand, rel_tol=1e-6)


# ------------------------------------------------------------------------------------------------ resume


def _job(out: Path, search: bool) -> LmJob:
    """Evaluation: lr 20 makes validation worsen, so NT-ASGD switches after epoch 2 (of 4) and the stop lands
    in an averaging epoch. Search: DARTS (first order) updates the architecture before every weight step."""
    torch.manual_seed(7)
    ids = torch.randint(0, VOCAB, (500,), generator=torch.Generator().manual_seed(3))
    settings = LmSettings(epochs=2 if search else 4, batch_size=4, eval_batch_size=2, bptt=6,
                          lr=2.0 if search else 20.0, nonmono=1, sequence_length="search" if search else "evaluation",
                          averaging="off" if search else "nt_asgd")
    job = LmJob(kind="test", settings=settings, model=build_network(TWO_NODES, VOCAB, 4, Dropouts()),
                train_ids=ids[:400], valid_ids=ids[400:], seed=1, out_dir=out, config={"test": 1}, inputs={})
    if search:
        space = BoundSpace.of("rnn", RnnSettings(nodes=2, size=4))
        method = create_method(DartsMethod(algorithm="darts", space="rnn"), space, SearchTraining(nodes=2))
        job.model = build_search_model(VOCAB, 4, steps=2, dropouts=Dropouts(), batch_norm=True)
        a_optimizer = torch.optim.Adam(method.arch_parameters(), lr=3e-3, weight_decay=1e-3)
        job.search = MethodSearch(method, TokenWindowNet(job.model), ids[400:], settings.batch_size, settings.bptt,
                                  a_optimizer, settings.epochs)
    return job


def _stop_at_training_forward(model: torch.nn.Module, number: int) -> None:
    calls = {"n": 0}

    def hook(module: torch.nn.Module, args: object) -> None:
        if module.training:
            calls["n"] += 1
            if calls["n"] == number:
                os.kill(os.getpid(), signal.SIGUSR1)

    model.register_forward_pre_hook(hook)


@pytest.mark.parametrize("search", [False, True], ids=["evaluation", "search"])
def test_a_run_stopped_mid_epoch_resumes_bit_identically(tmp_path: Path, search: bool) -> None:
    (tmp_path / "whole").mkdir()
    (tmp_path / "parts").mkdir()
    whole = train_language_model(_job(tmp_path / "whole", search))

    first = _job(tmp_path / "parts", search)
    stop_epoch = 1 if search else 3
    settings = first.settings
    windows_before = sum(len(epoch_windows(len(first.train_ids) // settings.batch_size, settings.bptt,
                                           settings.sequence_length, first.seed, epoch)) for epoch in range(stop_epoch))
    forwards_per_step = 2 if search else 1  # a search's architecture step runs the model too
    _stop_at_training_forward(first.model, forwards_per_step * windows_before + 3)
    with pytest.raises(Preempted, match="SIGUSR1"):
        train_language_model(first)
    stopped = load_checkpoint(tmp_path / "parts")
    assert stopped is not None and stopped["state"]["step_in_epoch"] > 0, "the stop lands mid-epoch"
    assert stopped["state"]["epoch"] == stop_epoch
    assert stopped["state"]["averaging"] is not search
    assert [row["averaging"] for row in whole.state.history] == ([0, 0] if search else [0, 0, 0, 1])
    resumed = train_language_model(_job(tmp_path / "parts", search))

    assert resumed.best_model.keys() == whole.best_model.keys()
    assert all(torch.equal(resumed.best_model[k], whole.best_model[k]) for k in whole.best_model)
    final_whole, final_resumed = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "parts")
    assert all(torch.equal(final_whole["model"][k], final_resumed["model"][k]) for k in final_whole["model"])
    if search:
        alphas = final_whole["search"]["method"]["alpha_recurrent"]
        assert torch.equal(alphas, final_resumed["search"]["method"]["alpha_recurrent"])
        assert not torch.equal(alphas, _job(tmp_path / "fresh", search).search.method.alpha_recurrent.detach()), \
            "the architecture was updated"
    drop_time = [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in whole.state.history]
    assert drop_time == [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in resumed.state.history]
