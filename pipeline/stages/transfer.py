"""The transfer stage: train a genotype's ImageNet network (mobile setting) and report top-1/top-5.

`python -m pipeline transfer --genotype G --seed S --out results/transfer/imagenet/D/M/seedS` trains
NetworkImageNet on the ImageFolder tree at `data.imagenet_root`: ImageNet itself, or the offline demo
tree that `prepare --dataset imagenet_demo` writes (recognised by its manifest), with the transfer
settings of the genotype's method variant (`transfer.method_overrides`: each paper trained its cells with
its own batch, learning rate and schedule). Writes checkpoint.pt and history.csv every epoch and
metrics.json last; runs under `torchrun` with DDP like retrain (`transfer.batch_size` is the global batch).
A recurrent genotype trains its language model on the corpus `--target` instead (language_model.transfer;
results/transfer/TARGET/D/M/seedS, pipeline.stages.lm_training.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import load_params
from pipeline.errors import PipelineError
from pipeline.layout import prepared_dir, training_slice
from pipeline.space.base import get_space
from pipeline.space.genotype import load_genotype
from pipeline.stages.common import add_params_argument
from pipeline.stages.lm_training import is_text_genotype, run_text_training
from pipeline.stages.retrain import add_training_arguments, cells_of, method_of
from pipeline.train.lm.setup import refuse_nan_skip

if TYPE_CHECKING:
    from torch import nn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_argument(parser)
    parser.add_argument("--genotype", type=Path, required=True, help="genotype JSON (results/genotypes/...)")
    parser.add_argument("--seed", type=int, required=True, help="seeds the initial weights and the data order")
    parser.add_argument("--method", help="method variant the genotype came from (default: its provenance.method)")
    parser.add_argument("--searched-on", help="dataset the genotype was searched on "
                                              "(default: the genotype's provenance.dataset)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output dir, e.g. results/transfer/imagenet/D/M/seedS")
    parser.add_argument("--target", help="recurrent genotypes only: the text corpus to train on "
                                         "(grid.rnn.transfer_to, e.g. wikitext2)")
    parser.add_argument("--prepared", type=Path, help="recurrent genotypes only: prepare's output dir of --target "
                                                      "(default: results/data/TARGET)")
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.data import build_dataset, folder_dataset, get_dataset_info
    from pipeline.inputs import training_inputs
    from pipeline.train import LrSchedule, TrainJob, TrainSettings, distributed_context, train_and_report

    params = load_params(args.params)
    genotype = load_genotype(args.genotype)
    method = method_of(args, genotype)
    searched_on = args.searched_on or genotype.provenance.get("dataset")
    if not searched_on:
        raise PipelineError(f"{args.genotype} records no provenance.dataset; pass --searched-on DATASET")
    if is_text_genotype(genotype):
        refuse_nan_skip(args.allow_nan_skip)
        if not args.target:
            raise PipelineError(f"{args.genotype} is a recurrent cell: pass --target CORPUS, the corpus it transfers "
                                f"to (grid.rnn.transfer_to)")
        run_text_training(params, "transfer", genotype, cells_of(genotype), method=method, corpus=args.target,
                          searched_on=searched_on, seed=args.seed, prepared=args.prepared or prepared_dir(args.target),
                          out=args.out, restart_on_change=args.restart_on_change)
        return 0
    if args.target or args.prepared:
        raise PipelineError("--target and --prepared apply to recurrent genotypes; an image genotype transfers to "
                            "the ImageFolder tree at data.imagenet_root")
    settings = params.transfer_settings(method)
    root = Path(params.data.imagenet_root)
    dataset = folder_dataset(root)
    info = get_dataset_info(dataset)
    data_args = {"root": root, "image_size": settings.image_size}
    train_set = build_dataset(dataset, "train", augment=True, **data_args)
    test_set = build_dataset(dataset, "test", augment=False, **data_args)
    num_classes = len(train_set.classes)

    def build_model() -> nn.Module:
        return get_space(genotype.search_space).build_network(
            genotype, settings, num_classes=num_classes, in_channels=info.in_channels,
            auxiliary=settings.auxiliary_weight > 0, network="imagenet")

    with distributed_context(params.runtime.device) as ctx:
        job = TrainJob(
            kind="transfer",
            settings=TrainSettings(
                epochs=settings.epochs, batch_size=settings.batch_size,
                schedule=LrSchedule(settings.lr_schedule, settings.lr, settings.epochs, gamma=settings.step_gamma,
                                    warmup_epochs=settings.warmup_epochs, warmup_base=settings.warmup_base),
                momentum=settings.momentum, weight_decay=settings.weight_decay, grad_clip=settings.grad_clip,
                auxiliary_weight=settings.auxiliary_weight, label_smoothing=settings.label_smoothing,
                max_steps_per_epoch=settings.max_steps_per_epoch, top5=True,
            ),
            build_model=build_model, train_set=train_set, test_set=test_set, seed=args.seed, out_dir=args.out,
            config=training_slice(params, "transfer", settings, cells_of(genotype), dataset=dataset,
                                  num_classes=num_classes, searched_on=searched_on, method=method, seed=args.seed,
                                  world_size=ctx.world_size),
            inputs=training_inputs(splits=None, dataset=dataset, root=root),
            runtime=params.runtime, num_workers=params.data.num_workers, allow_nan_skip=args.allow_nan_skip,
            restart_on_change=args.restart_on_change,
            progress=args.progress,
        )
        metrics = train_and_report(
            job, ctx, stage="transfer", params=params, dataset=searched_on, method=method,
            input_size=settings.image_size, in_channels=info.in_channels, tags={"target_dataset": dataset,
                                                                       "space": genotype.search_space},
            headline=lambda last: {"top1_error": 100.0 - last["test_acc"], "top5_error": 100.0 - last["test_top5"],
                                   "searched_on": searched_on, "dataset": dataset},
        )
    if metrics is not None:
        print(f"transfer finished: {args.out}/metrics.json (top-1 error {metrics['top1_error']:.2f}%, "
              f"top-5 error {metrics['top5_error']:.2f}% on {dataset})")
    return 0

