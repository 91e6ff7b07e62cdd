"""The DARTS recurrent search space: an RNN cell searched on Penn Treebank (DARTS §3, Fig. 4).

One job per module: `operations` (the candidate activations), `genotype` (the derived cell, its JSON and the
released cells), `cell` (the evaluation cell), `search_cell` (the cell mixing activations by architecture
weights), `model` (the language model around either cell), `derive` (weights -> genotype), `count`
(parameters and multiply-adds).
"""
