"""`python -m pipeline inspect GENOTYPE.json --dataset D`: size, cost and cells of a genotype's network.

Answers "is this architecture in the mobile setting / comparable to the paper's?" before spending a
retraining run on it; reads nothing but the genotype and the dataset's metadata.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from pipeline.data import get_dataset_info
from pipeline.space.base import get_space
from pipeline.space.genotype import load_genotype

# The papers' evaluation sizes: DARTS retraining on CIFAR, and the ImageNet mobile setting.
_DEFAULT_SIZE = {"cifar": (20, 36), "imagenet": (14, 48)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("genotype", help="genotype JSON file (results/genotypes/...)")
    parser.add_argument("--dataset", required=True,
                        help="registered dataset whose classes, channels and image size the network is "
                             "built for (e.g. cifar10, digits, imagenet); imagenet* get the ImageNet network")
    parser.add_argument("--layers", type=int, default=None,
                        help="number of cells (default: 14 for imagenet, 20 otherwise)")
    parser.add_argument("--channels", type=int, default=None,
                        help="initial channels C (default: 48 for imagenet, 36 otherwise)")


def run(args: argparse.Namespace) -> int:
    genotype = load_genotype(args.genotype)
    info = get_dataset_info(args.dataset)
    # The ImageNet stand-ins (imagenet_demo) are what transfer retrains on, with the ImageNet network.
    kind = "imagenet" if info.name.startswith("imagenet") else "cifar"
    default_layers, default_channels = _DEFAULT_SIZE[kind]
    layers = args.layers if args.layers is not None else default_layers
    channels = args.channels if args.channels is not None else default_channels
    space = get_space(genotype.search_space)
    size = info.image_size
    settings = SimpleNamespace(layers=layers, channels=channels, pool_bn=False)
    counts = space.count(genotype, settings, num_classes=info.num_classes, in_channels=info.in_channels,
                         input_size=size, network=kind)
    print(f"genotype   {args.genotype} (search space: {space.name})")
    print(f"network    {kind}: {layers} cells, C={channels}, {info.num_classes} classes, "
          f"input {info.in_channels}x{size}x{size}")
    print(f"params     {counts['params']:.2f} M (auxiliary head excluded)")
    print(f"mult-adds  {counts['mult_adds']:.1f} M")
    print(space.render(genotype))
    return 0
