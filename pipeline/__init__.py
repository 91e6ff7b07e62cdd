"""Differentiable NAS on the DARTS search space: stages from data to the papers' tables."""

__version__ = "0.1.0"
