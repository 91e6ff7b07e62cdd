"""Training a derived recurrent cell from scratch on a prepared corpus (quark0/darts rnn/train.py), as
`retrain` (language_model.retrain) and `transfer --target` (language_model.transfer) run it: NT-ASGD,
windows of random length, and at the end the best validation weights tested on the valid and test splits
(valid / test perplexity, parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.config import LmTrainConfig, Params
from pipeline.data.text import Corpus, batchify
from pipeline.device import describe_device
from pipeline.space.base import get_space
from pipeline.space.rnn.settings import RnnSettings
from pipeline.train.lm.evaluate import evaluate_nll, perplexity
from pipeline.train.lm.loop import LmJob, LmResult, LmSettings, train_language_model
from pipeline.train.lm.setup import corpus_inputs, dropouts, read_corpus, start


@dataclass
class TextTrainResult:
    """What retrain / transfer write: metrics.json (before provenance) and history.csv."""

    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def train_text_genotype(params: Params, stage: str, genotype: Any, config: dict[str, Any], method: str,
                        dataset: str, seed: int, prepared: Path, out_dir: Path, *, restart_on_change: bool,
                        on_epoch_end: Callable[[list[dict[str, Any]]], None]) -> TextTrainResult:
    """Train `genotype`'s language model on corpus `dataset` with language_model.<stage> of `method`, then
    test the best validation weights on the valid and test splits (train.py's final evaluation). `config` is
    the run's provenance slice (layout.lm_training_slice), its resume key with the corpus files."""
    settings: LmTrainConfig = params.lm_settings(stage, method)
    device = start(params, seed)
    corpus = read_corpus(prepared, dataset)
    space = get_space(genotype.search_space)
    rnn = RnnSettings(nodes=genotype.steps, size=settings.size, batch_norm=False, dropouts=dropouts(settings.dropouts))
    model = space.build_network(genotype, rnn, num_classes=len(corpus.vocab), in_channels=0, auxiliary=False)
    model.to(device)
    lm = LmSettings(epochs=settings.epochs, batch_size=settings.batch_size, eval_batch_size=settings.eval_batch_size,
                    bptt=settings.bptt, lr=settings.lr, weight_decay=settings.weight_decay,
                    grad_clip=settings.grad_clip, sequence_length="evaluation",
                    max_seq_len_delta=settings.max_seq_len_delta, alpha=settings.alpha, beta=settings.beta,
                    averaging="nt_asgd", nonmono=settings.nonmono, max_steps_per_epoch=settings.max_steps_per_epoch)
    job = LmJob(kind=stage, settings=lm, model=model, train_ids=corpus.train, valid_ids=corpus.valid, seed=seed,
                out_dir=out_dir, config=config, inputs=corpus_inputs(prepared, dataset),
                restart_on_change=restart_on_change, on_epoch_end=on_epoch_end)
    result = train_language_model(job)
    # A select run only ranks cells by validation perplexity: the choice never sees the test split.
    metrics = _final_metrics(result, model, corpus, settings, device, test=stage != "select")
    metrics |= {"dataset": dataset, "epochs": settings.epochs, "size": settings.size,
                "vocab_size": len(corpus.vocab), "device": describe_device(device), "device_count": 1,
                "wall_time_s": round(result.state.wall_time_s, 3),
                "params_m": space.count(genotype, rnn, num_classes=len(corpus.vocab), in_channels=0,
                                        input_size=0)["params"]}
    return TextTrainResult(metrics, result.state.history)


def _final_metrics(result: LmResult, model: torch.nn.Module, corpus: Corpus, settings: LmTrainConfig,
                   device: torch.device, *, test: bool) -> dict[str, float]:
    """Loss and perplexity of the best validation weights on the valid split, and on the test split when
    `test`."""
    model.load_state_dict(result.best_model)
    metrics = {"best_epoch": _best_epoch(result.state.history)}
    splits = {"valid": (corpus.valid, settings.eval_batch_size)}
    if test:
        splits["test"] = (corpus.test, settings.test_batch_size)
    for split, (ids, batch_size) in splits.items():
        loss = evaluate_nll(model, batchify(ids, batch_size, f"{split} split").to(device), settings.bptt)
        metrics |= {f"{split}_loss": loss, f"{split}_ppl": perplexity(loss)}
    return metrics


def _best_epoch(history: list[dict[str, Any]]) -> int:
    return min(history, key=lambda row: row["valid_loss"])["epoch"]
