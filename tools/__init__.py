"""Repository tooling for the book, not part of the bnlib package a reader installs (the wheel ships bnlib only).

Run from the repository root: ``python -m tools.bench`` (speed and memory), ``python -m tools.reproduce``
(every chapter through papermill, ``make paper``), ``python -m tools.stamp_colab`` (the repository URL into the
Colab cells, ``make colab``); ``tools.sphinx_mathjax`` and ``tools.sphinx_rebuild`` are Sphinx extensions that
_config.yml loads (``sphinx.local_extensions``).
"""
