"""The recurrent space's network settings, with the papers' values as named presets.

The space's hooks read `nodes` (searched nodes), `size` (embedding = hidden), `batch_norm` (search cell
only) and `dropouts` from the settings they are given; these presets are the values of DARTS' scripts
and tables, for the stages to start from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.space.rnn.model import Dropouts
from pipeline.space.rnn.operations import STEPS


@dataclass(frozen=True)
class RnnSettings:
    nodes: int = STEPS
    size: int = 300
    batch_norm: bool = True
    dropouts: Dropouts = field(default_factory=Dropouts)


# quark0/darts rnn/train_search.py: emsize = nhid = 300, batch norm in the nodes, its dropouts.
SEARCH = RnnSettings()
# rnn/train.py and DARTS Table 2: 850 units on PTB (the 23M-parameter model).
PTB = RnnSettings(size=850, batch_norm=False)
# DARTS §3.3 / Table 3 and DATA §4.3: 700 units on WikiText-2, hidden dropout 0.15 (the 33M model).
WIKITEXT2 = RnnSettings(size=700, batch_norm=False, dropouts=Dropouts(hidden=0.15))
