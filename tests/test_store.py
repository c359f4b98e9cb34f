"""Cache and checkpoint files check themselves: a bad one is moved aside with a warning and recomputed."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from bnlib import runs, store
from bnlib.train import train


def _run_file(cache) -> object:
    (path,) = (cache / "runs").glob("*.pt")
    return path


def test_numpy_records_round_trip_exactly():
    obj = {"a": np.arange(5, dtype=np.int16), "b": [np.float64(0.25), (np.ones((2, 3)), "x")], "c": None}
    back = store.decode(store.encode(obj))
    assert back["a"].dtype == np.int16 and np.array_equal(back["a"], obj["a"])
    assert type(back["b"][0]) is np.float64 and back["b"][0] == 0.25
    assert isinstance(back["b"][1], tuple) and np.array_equal(back["b"][1][0], np.ones((2, 3)))


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_an_unreadable_cached_run_is_moved_aside_and_retrained(tiny_dln, cache, damage):
    first = runs.run(tiny_dln, progress=False)
    path = _run_file(cache)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not a torch file"}[damage])
    with pytest.warns(UserWarning, match=rf"{path.name}.*moved it to {path.name}.corrupt"):
        again = runs.run(tiny_dln, progress=False)
    assert torch.equal(first["step_loss"], again["step_loss"]) and first["evals"] == again["evals"]
    assert (path.parent / f"{path.name}.corrupt").exists() and path.exists()


def test_a_cached_file_holding_another_run_is_not_returned(tiny_dln, cache):
    other = runs.run(tiny_dln.replace(seed=1), progress=False)
    other_path = _run_file(cache)
    wanted = runs.run_key(tiny_dln)
    other_path.rename(other_path.with_name(f"{wanted}.pt"))  # someone copied the wrong file in
    with pytest.warns(UserWarning, match="holds another run"):
        got = runs.run(tiny_dln, progress=False)
    assert got["config"]["seed"] == 0 and not torch.equal(got["step_loss"], other["step_loss"])


def test_loading_cannot_execute_code(tiny_dln, cache, tmp_path):
    runs.run(tiny_dln, progress=False)
    path, marker = _run_file(cache), tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"key": runs.run_key(tiny_dln), "payload": Evil()}, path)
    with pytest.warns(UserWarning, match="not a readable bnlib file"):
        runs.run(tiny_dln, progress=False)
    assert not marker.exists()
    with open(path.with_name(path.name + ".corrupt"), "wb") as f:  # an old-style plain pickle: refused too
        pickle.dump({"x": np.zeros(2)}, f)
    with pytest.raises(store.BadFile):
        store.load(path.with_name(path.name + ".corrupt"))


@pytest.mark.parametrize("damage", ["truncated", "other-run"])
def test_a_bad_checkpoint_is_moved_aside_and_the_run_starts_over(tiny_vgg, tmp_path, damage):
    config, path = tiny_vgg.replace(norm="noisy"), tmp_path / "ckpt.pt"
    train(config.replace(seed=1) if damage == "other-run" else config, progress=False, checkpoint=path,
          stop_after=5)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"checkpoint: .*ckpt\.pt.*moved it to ckpt\.pt\.corrupt"):
        resumed = train(config, progress=False, checkpoint=path)
    plain = train(config, progress=False)
    assert torch.equal(resumed["step_loss"], plain["step_loss"]) and resumed["evals"] == plain["evals"]


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_unusable_cache_folder_fails_before_training(tiny_dln, tmp_path, monkeypatch, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    monkeypatch.setenv("BNLIB_CACHE", str(blocker if where == "a file" else blocker / "cache"))
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("trained before checking the cache folder"))
    with pytest.raises(store.NotWritable, match=r"the run cache \(\$BNLIB_CACHE or cache=\) .*blocker"):
        runs.run(tiny_dln, progress=False)


def test_temporary_names_differ_between_writers_with_the_same_pid(tmp_path, monkeypatch):
    """Two Colab runtimes writing one Drive cache can have the same pid: the temporary file must still differ."""
    names = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: (names.append(Path(f).name), real_save(obj, f))[1])
    for _ in range(2):
        store.save_atomic({"v": 1}, tmp_path / "run.pt")
    assert len(set(names)) == 2 and all(str(os.getpid()) in n for n in names)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary left behind
