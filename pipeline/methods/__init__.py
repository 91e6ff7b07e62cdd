"""Search methods, one module each, registered by the `algorithm` name used in params.yaml."""

from pipeline.methods import darts, data_egs, ddsas, drnas, pc_darts, random_search, sdarts
from pipeline.methods.base import (
    SearchMethod,
    StepContext,
    create_method,
    list_methods,
    method_class,
    register_method,
)

__all__ = [
    "SearchMethod",
    "StepContext",
    "create_method",
    "darts",
    "data_egs",
    "ddsas",
    "drnas",
    "list_methods",
    "method_class",
    "pc_darts",
    "random_search",
    "register_method",
    "sdarts",
]
