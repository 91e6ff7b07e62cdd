"""Search methods, one module each, registered by the `algorithm` name used in params.yaml."""

from pipeline.methods import darts
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
    "list_methods",
    "register_method",
]
