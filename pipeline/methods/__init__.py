"""Search methods, one module each, registered by the `algorithm` name used in params.yaml."""

from pipeline.methods import darts, data_egs, ddsas, drnas, gdas, pc_darts, random_search, sdarts
from pipeline.methods.base import (
    SearchMethod,
    SearchSpace,
    StepContext,
    create_method,
    list_methods,
    register_method,
)

__all__ = [
    "SearchMethod",
    "SearchSpace",
    "StepContext",
    "create_method",
    "darts",
    "data_egs",
    "ddsas",
    "drnas",
    "gdas",
    "list_methods",
    "pc_darts",
    "random_search",
    "register_method",
    "sdarts",
]
