"""The package's own search spaces: importing this module registers them (`get_space` does it)."""

from pipeline.space import cnn, rdarts_spaces

__all__ = ["cnn", "rdarts_spaces"]
