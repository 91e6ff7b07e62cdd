"""Evaluation networks built from a genotype, and their parameter / mult-add counts."""

from pipeline.nets.auxiliary import AuxiliaryHead
from pipeline.nets.cell import Cell, drop_path
from pipeline.nets.cifar import NetworkCIFAR
from pipeline.nets.complexity import count_parameters_m, mult_adds_m
from pipeline.nets.imagenet import NetworkImageNet
from pipeline.nets.network import EvalNetwork

__all__ = [
    "AuxiliaryHead",
    "Cell",
    "EvalNetwork",
    "NetworkCIFAR",
    "NetworkImageNet",
    "count_parameters_m",
    "drop_path",
    "mult_adds_m",
]
