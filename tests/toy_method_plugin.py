"""A user's own search method, as a plugin module: the method class and its options in one file.

Used by tests/test_method_plugin.py, which names it under `plugins:` in a params file (copied next to it)
and validates and runs it with no edit to the package. The method is DARTS-like (one learnable logit per
edge and candidate, first-order architecture steps) but mixes in a fixed favourite candidate with weight
`share` > 1/2: whatever the logits learn, the favourite keeps the largest weight on every edge, so the
derived genotype uses it alone. That makes its result predictable from the options, an oracle for the test.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipeline.config import MethodBase, SearchTraining
from pipeline.methods.base import register_method
from pipeline.methods.darts import AlphaMethod
from pipeline.space.base import ArchWeights


class FavouriteOptions(MethodBase):
    favourite: Annotated[int, Field(ge=0)] = Field(
        1, description="Index, in each edge's candidate list, of the candidate mixed in with weight `share`."
    )
    share: Annotated[float, Field(gt=0.5, lt=1)] = Field(
        0.75, description="Fixed weight of the favourite; the softmax of the logits shares the rest."
    )

    def check_search(self, where: str, training: SearchTraining, shape: tuple[int, int]) -> None:
        if self.favourite >= shape[1]:
            raise ValueError(f"{where}.favourite: index {self.favourite} but the space offers {shape[1]} "
                             "candidates per edge")


@register_method("toy_favourite", options=FavouriteOptions)
class Favourite(AlphaMethod):
    """(1 - share) softmax(alpha) + share one_hot(favourite) on every edge."""

    config: FavouriteOptions

    def forward_weights(self) -> ArchWeights:
        share, index = self.config.share, self.config.favourite
        mixed = {}
        for cell, probabilities in self.softmax_weights().cells.items():
            favourite = probabilities.new_zeros(probabilities.shape)
            favourite[:, index] = 1.0
            mixed[cell] = (1 - share) * probabilities + share * favourite
        return ArchWeights(mixed)
