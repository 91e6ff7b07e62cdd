"""User-facing errors.

A `PipelineError` means the input was wrong (a key of params.yaml, a file, a dataset directory), not the
code: the CLI prints its message without a traceback and exits with status 2, so a user reads what to
fix instead of a stack.
"""


class PipelineError(Exception):
    """An error whose message tells the user what was wrong and how to fix it."""


class ConfigError(PipelineError):
    """params.yaml (or a file derived from it) failed validation."""


class DataError(PipelineError):
    """A dataset is missing, partial or malformed."""


class GenotypeError(PipelineError):
    """A genotype file is malformed or references something outside the search space."""


class CheckpointError(PipelineError):
    """A checkpoint cannot be used (corrupted, or written by a different configuration)."""


class NumericalError(PipelineError):
    """A loss or parameter became NaN/Inf."""


class Preempted(Exception):
    """Raised after the stop checkpoint is written; the CLI exits with EXIT_PREEMPTED.

    Not a PipelineError (nothing was wrong) and torch-free, so tracking can recognise it in any stage.
    """


EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again", which is what rerunning the command does
