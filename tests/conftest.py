"""Shared fixtures: tiny configs that train in well under a second."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bnlib.train import RunConfig

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_vgg() -> RunConfig:
    return RunConfig(model="vgg", norm="batch", lr=0.05, steps=12, batch_size=16, width=1 / 16,
                     dataset="synthetic", n_train=128, n_test=64, eval_every=4)


@pytest.fixture
def tiny_dln() -> RunConfig:
    return RunConfig(model="dln", norm="batch", lr=1e-4, steps=20, dln_points=64, dln_depth=5, dln_dim=4,
                     eval_every=5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def new_book(tmp_path) -> Path:
    """An empty book folder with this repository's configuration: _config.yml, references.bib, and the Sphinx
    extensions _config.yml loads from tools/ (sphinx.local_extensions, found relative to the book)."""
    root, book = Path(__file__).resolve().parents[1], tmp_path / "book"
    book.mkdir()
    for name in ("_config.yml", "references.bib"):
        shutil.copy(root / name, book / name)
    shutil.copytree(root / "tools", book / "tools", ignore=shutil.ignore_patterns("tests", "__pycache__"))
    (book / "index.md").write_text("# Test book\n")
    return book
