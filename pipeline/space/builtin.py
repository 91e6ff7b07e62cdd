"""The package's own search spaces: importing this module registers them (`get_space` does it)."""

from pipeline.space import cnn

__all__ = ["cnn"]
