"""The DARTS CNN search space: operations, genotypes and the search-time supernet."""
