"""Language-model training of the recurrent space: the loop shared by search and evaluation training,
perplexity, and the non-monotonically triggered switch to averaged SGD (NT-ASGD)."""

from pipeline.train.lm.evaluate import evaluate_nll, perplexity
from pipeline.train.lm.loop import LmJob, LmSettings, LmState, train_language_model
from pipeline.train.lm.ntasgd import should_average

__all__ = ["LmJob", "LmSettings", "LmState", "evaluate_nll", "perplexity", "should_average", "train_language_model"]
