"""The package's own search spaces: importing this module registers them (`get_space` does it)."""

from pipeline.space import cnn, rdarts_spaces
from pipeline.space.nb201 import space as nb201
from pipeline.space.rnn import space as rnn

__all__ = ["cnn", "nb201", "rdarts_spaces", "rnn"]
