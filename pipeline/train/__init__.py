"""Supervised training of evaluation networks (retrain on CIFAR-style data, transfer to ImageNet).

One loop for both stages and for one process or many under `torchrun`; the stages only choose the
network, the data and the settings.
"""

from pipeline.train.distributed import DistContext, distributed_context
from pipeline.train.loop import TrainJob, TrainResult, TrainSettings, TrainState, train
from pipeline.train.schedule import LrSchedule
from pipeline.train.stage import train_and_report

__all__ = [
    "DistContext",
    "LrSchedule",
    "TrainJob",
    "TrainResult",
    "TrainSettings",
    "TrainState",
    "distributed_context",
    "train",
    "train_and_report",
]
