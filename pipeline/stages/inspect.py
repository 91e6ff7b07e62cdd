"""`python -m pipeline inspect GENOTYPE.json --dataset D`: size, cost and cells of a genotype's network.

Answers "is this architecture in the mobile setting / comparable to the paper's?" before spending a
retraining run on it; reads nothing but the genotype and the dataset's metadata. A recurrent genotype
(a text space) is counted for `--vocab` words at `--channels` units (embedding = hidden; default 850,
DARTS on PTB) instead of a dataset.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

from pipeline.data import get_dataset_info
from pipeline.errors import ConfigError, PipelineError
from pipeline.space.base import SearchSpace, get_space
from pipeline.space.genotype import load_genotype

# The papers' evaluation sizes: DARTS retraining on CIFAR, and the ImageNet mobile setting.
_DEFAULT_SIZE = {"cifar": (20, 36), "imagenet": (14, 48)}
# Datasets evaluated with the ImageNet network (ImageNet16-120 is not one: 16 px images, the small network).
_IMAGENET_NETWORK_DATASETS = ("imagenet", "imagenet_demo")
_TEXT_SIZE = 850  # DARTS' PTB evaluation model (the 23M-parameter one of its Table 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("genotype", help="genotype JSON file (results/genotypes/...)")
    parser.add_argument("--dataset", default=None,
                        help="registered dataset whose classes, channels and image size the network is "
                             "built for (e.g. cifar10, digits, imagenet); imagenet* get the ImageNet network; "
                             "required for image spaces")
    parser.add_argument("--vocab", type=int, default=None,
                        help="vocabulary size a text space's language model is counted for (PTB: 10000, "
                             "WikiText-2: 33278); required for text spaces")
    parser.add_argument("--layers", type=int, default=None,
                        help="number of cells (default: 14 for imagenet, 20 otherwise)")
    parser.add_argument("--channels", type=int, default=None,
                        help="initial channels C (default: 48 for imagenet, 36 otherwise); for a text space "
                             f"the embedding = hidden size (default: {_TEXT_SIZE})")


def run(args: argparse.Namespace) -> int:
    genotype = load_genotype(args.genotype)
    space = get_space(genotype.search_space)
    if space.data_kind == "text":
        return _inspect_text(args, genotype, space)
    if args.dataset is None:
        raise ConfigError(f"--dataset: required for a genotype of the image space '{space.name}'")
    info = get_dataset_info(args.dataset)
    # The ImageNet stand-ins (imagenet_demo) are what transfer retrains on, with the ImageNet network.
    kind = "imagenet" if info.name in _IMAGENET_NETWORK_DATASETS else "cifar"
    default_layers, default_channels = _DEFAULT_SIZE[kind]
    layers = args.layers if args.layers is not None else default_layers
    channels = args.channels if args.channels is not None else default_channels
    size = info.image_size
    settings = SimpleNamespace(layers=layers, channels=channels, pool_bn=False)
    try:
        counts = space.count(genotype, settings, num_classes=info.num_classes, in_channels=info.in_channels,
                             input_size=size, network=kind)
    except ValueError as exc:  # a size or network the genotype's space does not build
        raise PipelineError(f"{args.genotype}: {exc} (--layers, --channels)") from None
    print(f"genotype   {args.genotype} (search space: {space.name})")
    print(f"network    {kind}: {layers} cells, C={channels}, {info.num_classes} classes, "
          f"input {info.in_channels}x{size}x{size}")
    print(f"params     {counts['params']:.2f} M (auxiliary head excluded)")
    print(f"mult-adds  {counts['mult_adds']:.1f} M")
    print(space.render(genotype))
    return 0


def _inspect_text(args: argparse.Namespace, genotype: Any, space: SearchSpace) -> int:
    if args.vocab is None or args.vocab < 1:
        raise ConfigError(f"--vocab: a positive vocabulary size is required for a genotype of the text space "
                          f"'{space.name}' (PTB: 10000, WikiText-2: 33278)")
    units = args.channels if args.channels is not None else _TEXT_SIZE
    counts = space.count(genotype, SimpleNamespace(nodes=len(genotype.recurrent), channels=units),
                         num_classes=args.vocab, in_channels=0, input_size=0)
    print(f"genotype   {args.genotype} (search space: {space.name})")
    print(f"network    language model: embedding = hidden = {units}, decoder tied, {args.vocab} words")
    print(f"params     {counts['params']:.2f} M")
    print(f"mult-adds  {counts['mult_adds']:.1f} M per token")
    print(space.render(genotype))
    return 0
