"""The package's own search spaces: importing this module registers them (`get_space` does it)."""

from pipeline.space import cnn
from pipeline.space.rnn import space as rnn

__all__ = ["cnn", "rnn"]
