"""bnlib: models, data, training loop and probes for the book on Santurkar et al. (2018)."""

__version__ = "0.1.0"
