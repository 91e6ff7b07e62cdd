"""The recurrent space's stages: what `search`, `retrain` and `transfer` run when the variant's space is a
text space (grid.rnn), built from params.yaml and a prepared corpus.

- search: the DARTS RNN search (quark0/darts rnn/train_search.py): the supernet of `search.channels`
  units and `search.nodes` nodes, plain SGD on the training stream at the constant rate `weights.lr`,
  the method's architecture steps (Adam, `search.arch`) on the validation stream, `language_model.search`
  for windows, dropouts and batch normalisation. History and architecture rows per epoch, as an image search.
- retrain / transfer: the evaluation model of a genotype (rnn/train.py): NT-ASGD, windows of random
  length, the best validation weights tested at the end (valid and test perplexity, parameters).

Each returns what the stage writes; the stage modules own the files and tracking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.config import LmDropouts, LmTrainConfig, Params
from pipeline.data.files import sha256_file
from pipeline.data.text import Corpus, batchify, load_corpus
from pipeline.data.text.corpus import CORPUS_FILES, SPLITS
from pipeline.device import choose_device, describe_device, peak_memory_mb, pin_threads, seed_everything
from pipeline.errors import DataError
from pipeline.inputs import code_fingerprint
from pipeline.layout import search_slice
from pipeline.methods import create_method
from pipeline.provenance import params_sha256
from pipeline.space.base import BoundSpace, get_space
from pipeline.space.rnn.model import Dropouts
from pipeline.space.rnn.settings import RnnSettings
from pipeline.space.rnn.step_net import TokenWindowNet
from pipeline.train.lm.evaluate import evaluate_nll, perplexity
from pipeline.train.lm.loop import LmJob, LmResult, LmSettings, train_language_model
from pipeline.train.lm.search import MethodSearch

EpochRows = Callable[[list[dict[str, Any]], list[dict[str, Any]]], None]


def corpus_inputs(prepared: Path, dataset: str) -> dict[str, str]:
    """The resume-key inputs of a text stage: the three corpus files prepare wrote, and the code."""
    files = CORPUS_FILES[dataset]
    return {files[split]: sha256_file(prepared / files[split]) for split in SPLITS} | {"code": code_fingerprint()}


def read_corpus(prepared: Path, dataset: str) -> Corpus:
    if dataset not in CORPUS_FILES:
        raise DataError(f"'{dataset}' is not a text corpus; the recurrent space trains on {', '.join(CORPUS_FILES)}")
    return load_corpus(prepared, dataset)


def dropouts(config: LmDropouts) -> Dropouts:
    return Dropouts(**config.model_dump())


def _start(params: Params, seed: int) -> torch.device:
    device = choose_device(params.runtime.device)
    pin_threads(params.runtime.threads)
    seed_everything(seed, params.runtime.deterministic)
    return device


# ------------------------------------------------------------------------------------------------ search


@dataclass
class TextSearchResult:
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    arch_history: list[dict[str, Any]]


def run_text_search(params: Params, method: str, dataset: str, seed: int, prepared: Path, out_dir: Path, *,
                    restart_on_change: bool, on_epoch_end: EpochRows) -> TextSearchResult:
    """Search (or resume) variant `method` on corpus `dataset`; `on_epoch_end(history, arch_history)`."""
    settings = params.search_settings(method)
    text = params.language_model.search
    device = _start(params, seed)
    corpus = read_corpus(prepared, dataset)
    rnn = RnnSettings(nodes=settings.nodes, size=settings.channels, batch_norm=text.batch_norm,
                      dropouts=dropouts(text.dropouts))
    space = BoundSpace.of(params.method(method).space, rnn)
    search_method = create_method(params.method(method), space, settings)
    model = space.space.build_supernet(rnn, num_classes=len(corpus.vocab), in_channels=0, cells=space.cells)
    model.to(device)
    search_method.to(device)
    arch_params = search_method.arch_parameters()
    a_optimizer = (torch.optim.Adam(arch_params, lr=settings.arch.lr, betas=settings.arch.betas,
                                    weight_decay=settings.arch.weight_decay) if arch_params else None)
    lm = LmSettings(epochs=settings.epochs, batch_size=settings.batch_size, eval_batch_size=text.eval_batch_size,
                    bptt=text.bptt, lr=settings.weights.lr, weight_decay=settings.weights.weight_decay,
                    grad_clip=settings.weights.grad_clip, sequence_length="search", alpha=text.alpha, beta=text.beta,
                    averaging="off", max_steps_per_epoch=settings.max_steps_per_epoch)
    searcher = MethodSearch(search_method, TokenWindowNet(model), corpus.valid, settings.batch_size, text.bptt,
                            a_optimizer, settings.epochs)
    config_slice = search_slice(params, method) | {"dataset": dataset, "seed": seed}
    job = LmJob(kind="search", settings=lm, model=model, train_ids=corpus.train, valid_ids=corpus.valid, seed=seed,
                out_dir=out_dir, config=config_slice, inputs=corpus_inputs(prepared, dataset), search=searcher,
                restart_on_change=restart_on_change,
                on_epoch_end=lambda history: on_epoch_end(history, searcher.arch_history))
    result = train_language_model(job)
    history, arch_history = result.state.history, searcher.arch_history
    last = history[-1]
    summary = {
        "wall_time_s": round(result.state.wall_time_s, 3),
        "device": describe_device(device),
        "device_count": 1,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "epochs": settings.epochs,
        "final_valid_loss": last["valid_loss"],
        "final_valid_ppl": last["valid_ppl"],
        "vocab_size": len(corpus.vocab),
        "genotype": arch_history[-1]["genotype"],
        "early_stop": None,
        "method_state": {name: tensor.detach().cpu().double().tolist()
                         for name, tensor in search_method.state_dict().items() if tensor.numel() <= 4096},
        "params_sha256": params_sha256(search_slice(params, method)),
    }
    return TextSearchResult(summary, history, arch_history)


# ----------------------------------------------------------------------------------------- retrain, transfer


@dataclass
class TextTrainResult:
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def train_text_genotype(params: Params, stage: str, genotype: Any, config: dict[str, Any], method: str,
                        dataset: str, seed: int, prepared: Path, out_dir: Path, *, restart_on_change: bool,
                        on_epoch_end: Callable[[list[dict[str, Any]]], None]) -> TextTrainResult:
    """Train `genotype`'s language model on corpus `dataset` with language_model.<stage> of `method`, then
    test the best validation weights on the valid and test splits (train.py's final evaluation). `config` is
    the run's provenance slice (layout.lm_training_slice), its resume key with the corpus files."""
    settings: LmTrainConfig = params.lm_settings(stage, method)
    device = _start(params, seed)
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
    metrics = _final_metrics(result, model, corpus, settings, device)
    metrics |= {"dataset": dataset, "epochs": settings.epochs, "size": settings.size,
                "vocab_size": len(corpus.vocab), "device": describe_device(device), "device_count": 1,
                "wall_time_s": round(result.state.wall_time_s, 3),
                "params_m": space.count(genotype, rnn, num_classes=len(corpus.vocab), in_channels=0,
                                        input_size=0)["params"]}
    return TextTrainResult(metrics, result.state.history)


def _final_metrics(result: LmResult, model: torch.nn.Module, corpus: Corpus, settings: LmTrainConfig,
                   device: torch.device) -> dict[str, float]:
    model.load_state_dict(result.best_model)
    valid = batchify(corpus.valid, settings.eval_batch_size, "validation split").to(device)
    test = batchify(corpus.test, settings.test_batch_size, "test split").to(device)
    valid_loss, test_loss = evaluate_nll(model, valid, settings.bptt), evaluate_nll(model, test, settings.bptt)
    return {"valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss), "test_loss": test_loss,
            "test_ppl": perplexity(test_loss), "best_epoch": _best_epoch(result.state.history)}


def _best_epoch(history: list[dict[str, Any]]) -> int:
    return min(history, key=lambda row: row["valid_loss"])["epoch"]
