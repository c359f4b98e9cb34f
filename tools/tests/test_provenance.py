"""The build banner names the commit (and says when the tree differs from it), the profile and the dataset."""

from __future__ import annotations

import datetime
import subprocess

from tools import sphinx_provenance


def _git(root, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_commit_is_the_short_head_and_says_when_the_tree_differs(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    assert sphinx_provenance.commit(tmp_path) == "an unknown commit"  # not a repository
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef")
    assert sphinx_provenance.commit(tmp_path) == "0123456"
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    short = _git(tmp_path, "rev-parse", "--short", "HEAD")
    assert sphinx_provenance.commit(tmp_path) == short
    (tmp_path / "a.txt").write_text("two")
    assert sphinx_provenance.commit(tmp_path) == f"{short} + local changes"


def test_banner_names_profile_dataset_and_date(tmp_path, monkeypatch):
    monkeypatch.setenv("BNLIB_PROFILE", "smoke")
    monkeypatch.setenv("BNLIB_DATASET", "synthetic")
    monkeypatch.setenv("GITHUB_SHA", "abcdef0123")
    text = sphinx_provenance.banner(tmp_path, datetime.date(2026, 12, 6))
    assert text == "Built 2026-12-06 from commit abcdef0: profile smoke, VGG runs on synthetic"
