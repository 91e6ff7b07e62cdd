"""A recurrent-cell search on a prepared corpus (quark0/darts rnn/train_search.py), as the `search` stage
runs it for a variant of a text space: the supernet of `search.channels` units (embedding = hidden) and
`search.nodes` nodes, plain SGD on the training stream at the constant rate `weights.lr` (weight decay,
clip), the method's architecture steps (Adam, `search.arch`) on the validation stream, and
`language_model.search` for windows, dropouts and batch normalisation. History and architecture rows per
epoch, like an image search's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.device import describe_device, peak_memory_mb
from pipeline.layout import search_slice
from pipeline.methods import create_method
from pipeline.provenance import params_sha256
from pipeline.search.optimizers import architecture_optimizer
from pipeline.space.base import BoundSpace
from pipeline.space.rnn.settings import RnnSettings
from pipeline.space.rnn.step_net import TokenWindowNet
from pipeline.train.lm.loop import LmJob, LmSettings, train_language_model
from pipeline.train.lm.search import HessianSchedule, MethodSearch
from pipeline.train.lm.setup import corpus_inputs, dropouts, read_corpus, start

EpochRows = Callable[[list[dict[str, Any]], list[dict[str, Any]]], None]


@dataclass
class TextSearchResult:
    """What the search stage writes: summary.json (before provenance), history.csv, arch_weights.jsonl."""

    summary: dict[str, Any]
    history: list[dict[str, Any]]
    arch_history: list[dict[str, Any]]


def run_text_search(params: Params, method: str, dataset: str, seed: int, prepared: Path, out_dir: Path, *,
                    restart_on_change: bool, on_epoch_end: EpochRows) -> TextSearchResult:
    """Search (or resume) variant `method` on corpus `dataset`; `on_epoch_end(history, arch_history)`."""
    settings = params.search_settings(method)
    text = params.language_model.search
    device = start(params, seed)
    corpus = read_corpus(prepared, dataset)
    rnn = RnnSettings(nodes=settings.nodes, size=settings.channels, batch_norm=text.batch_norm,
                      dropouts=dropouts(text.dropouts))
    space = BoundSpace.of(params.method(method).space, rnn)
    search_method = create_method(params.method(method), space, settings)
    model = space.space.build_supernet(rnn, num_classes=len(corpus.vocab), in_channels=0, cells=space.cells)
    model.to(device)
    search_method.to(device)
    a_optimizer = architecture_optimizer(search_method.arch_parameters(), settings.arch)
    lm = LmSettings(epochs=settings.epochs, batch_size=settings.batch_size, eval_batch_size=text.eval_batch_size,
                    bptt=text.bptt, lr=settings.weights.lr, weight_decay=settings.weights.weight_decay,
                    grad_clip=settings.weights.grad_clip, sequence_length="search", alpha=text.alpha, beta=text.beta,
                    averaging="off", max_steps_per_epoch=settings.max_steps_per_epoch)
    analysis = params.search.analysis
    hessian = HessianSchedule(analysis.hessian_every, analysis.hessian_batches, analysis.hessian_iterations)
    searcher = MethodSearch(search_method, TokenWindowNet(model), corpus.valid, settings.batch_size, text.bptt,
                            a_optimizer, settings.epochs, hessian)
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
