"""The retrain stage: train a genotype's evaluation network from scratch and test it.

`python -m pipeline retrain --genotype G --dataset D --seed S --out results/retrain/D/M/seedS` trains
NetworkCIFAR on the whole training split (augmentation and cutout) and evaluates it on the test split
every epoch. Writes checkpoint.pt and history.csv every epoch and metrics.json last. Under `torchrun`
it trains with DDP (`retrain.batch_size` is the global batch, split over the processes); rerunning a
stopped command resumes it. A recurrent genotype trains its language model on the corpus instead
(pipeline.stages.lm_training.py: language_model.retrain, perplexity).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Params, RetrainConfig, load_params
from pipeline.errors import PipelineError
from pipeline.layout import training_slice
from pipeline.space.base import data_dir_of, get_space
from pipeline.space.genotype import load_genotype
from pipeline.stages.common import add_params_argument, add_run_control_arguments
from pipeline.stages.lm_training import is_text_genotype, run_text_training
from pipeline.train.lm.setup import refuse_nan_skip

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import Dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_argument(parser)
    parser.add_argument("--genotype", type=Path, required=True, help="genotype JSON (results/genotypes/...)")
    parser.add_argument("--dataset", required=True, help="dataset to train and test on (digits, cifar10, ...)")
    parser.add_argument("--seed", type=int, required=True, help="seeds the initial weights and the data order")
    parser.add_argument("--method", help="method variant whose retrain.method_overrides apply "
                                         "(default: the genotype's provenance.method)")
    parser.add_argument("--prepared", type=Path, help="prepare's output dir (default: results/data/DATASET; "
                                                      "NAS-Bench-201 variants: results/data/nb201/DATASET)")
    parser.add_argument("--out", type=Path, required=True, help="output dir, e.g. results/retrain/D/M/seedS")
    add_training_arguments(parser)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options retrain and transfer share."""
    add_run_control_arguments(parser)


def method_of(args: argparse.Namespace, genotype: Any) -> str:
    """--method, else the method recorded in the genotype's provenance."""
    method = args.method or genotype.provenance.get("method")
    if not method:
        raise PipelineError(f"{args.genotype} records no provenance.method; pass --method NAME")
    return str(method)


def cells_of(genotype: Any) -> dict[str, Any]:
    """The genotype without its provenance: what the trained network depends on."""
    as_json = get_space(genotype.search_space).genotype_to_json(genotype)
    return {key: value for key, value in as_json.items() if key != "provenance"}


def train_text_genotype(params: Params, stage: str, genotype: Any, method: str, args: argparse.Namespace) -> None:
    """Retrain or select on a recurrent genotype: the language-model training on the corpus `--dataset`."""
    refuse_nan_skip(args.allow_nan_skip)
    run_text_training(params, stage, genotype, cells_of(genotype), method=method, corpus=args.dataset,
                      searched_on=str(genotype.provenance.get("dataset", args.dataset)), seed=args.seed,
                      prepared=args.prepared or data_dir_of(params, method, args.dataset), out=args.out,
                      restart_on_change=args.restart_on_change)


def run(args: argparse.Namespace) -> int:
    from pipeline.data import build_dataset

    params = load_params(args.params)
    genotype = load_genotype(args.genotype)
    method = method_of(args, genotype)
    if is_text_genotype(genotype):
        train_text_genotype(params, "retrain", genotype, method, args)
        return 0
    settings = params.retrain_settings(method, args.dataset)
    splits = (args.prepared or data_dir_of(params, method, args.dataset)) / "splits.npz"
    # Datasets with an official split (CIFAR, SVHN) need no splits file; digits' split lives only there.
    indices_file = splits if splits.exists() else None
    data_args = {"root": params.data.root, "download": params.data.download, "indices_file": indices_file}
    train_set = build_dataset(args.dataset, "train", augment=True, cutout=settings.cutout, **data_args)
    test_set = build_dataset(args.dataset, "test", augment=False, **data_args)
    metrics = train_genotype(
        args, params, genotype, method, settings, train_set, test_set, splits, stage="retrain",
        headline=lambda last: {"test_acc": last["test_acc"], "test_error": 100.0 - last["test_acc"]})
    if metrics is not None:
        print(f"retrain finished: {args.out}/metrics.json (test error {metrics['test_error']:.2f}%, "
              f"{metrics['params_m']:.2f} M params)")
    return 0


def train_genotype(args: argparse.Namespace, params: Params, genotype: Any, method: str, settings: RetrainConfig,
                   train_set: Dataset, test_set: Dataset, splits: Path, *, stage: str,
                   headline: Callable[[dict[str, Any]], dict[str, float]]) -> dict[str, Any] | None:
    """Train `genotype`'s CIFAR-style evaluation network on `train_set`, testing on `test_set` every epoch
    (retrain: the test split; select: the search's validation half); rank 0's metrics."""
    from pipeline.data import get_dataset_info
    from pipeline.inputs import training_inputs
    from pipeline.train import LrSchedule, TrainJob, TrainSettings, distributed_context, train_and_report

    info = get_dataset_info(args.dataset)

    def build_model() -> nn.Module:
        return get_space(genotype.search_space).build_network(
            genotype, settings, num_classes=info.num_classes, in_channels=info.in_channels,
            auxiliary=settings.auxiliary_weight > 0, network="cifar")

    with distributed_context(params.runtime.device) as ctx:
        job = TrainJob(
            kind=stage,
            settings=TrainSettings(
                epochs=settings.epochs, batch_size=settings.batch_size,
                schedule=LrSchedule("cosine", settings.lr, settings.epochs, lr_min=settings.lr_min),
                momentum=settings.momentum, nesterov=settings.nesterov, weight_decay=settings.weight_decay,
                grad_clip=settings.grad_clip,
                auxiliary_weight=settings.auxiliary_weight, drop_path=settings.drop_path,
                max_steps_per_epoch=settings.max_steps_per_epoch,
            ),
            build_model=build_model, train_set=train_set, test_set=test_set, seed=args.seed, out_dir=args.out,
            config=training_slice(params, stage, settings, cells_of(genotype), dataset=args.dataset, method=method,
                                  seed=args.seed, world_size=ctx.world_size),
            inputs=training_inputs(splits=splits, dataset=args.dataset, root=Path(params.data.root)),
            runtime=params.runtime, num_workers=params.data.num_workers, allow_nan_skip=args.allow_nan_skip,
            restart_on_change=args.restart_on_change,
            progress=args.progress,
        )
        return train_and_report(job, ctx, stage=stage, params=params, dataset=args.dataset, method=method,
                                input_size=info.image_size, in_channels=info.in_channels,
                                tags={"space": genotype.search_space}, headline=headline)

