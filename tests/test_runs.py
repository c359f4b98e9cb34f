import importlib.util
import shutil
import sys

import pytest
import torch

from bnlib import runs, store
from bnlib.probes.base import Probe, StepContext


class CountingProbe(Probe):
    name = "counting"

    def measure(self, ctx: StepContext) -> dict:
        return {"loss": float(ctx.loss)}


def test_cache_hit_does_not_retrain(tiny_dln, cache, monkeypatch):
    first = runs.run(tiny_dln, [CountingProbe(every=5)], progress=False)
    assert runs.is_cached(tiny_dln, [CountingProbe(every=5)])
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("retrained on a cache hit"))
    second = runs.run(tiny_dln, [CountingProbe(every=5)], progress=False)
    assert torch.equal(first["step_loss"], second["step_loss"])
    assert second["probes"]["counting"] == first["probes"]["counting"]


def test_cache_misses_on_config_or_probe_change(tiny_dln, cache):
    runs.run(tiny_dln, progress=False)
    assert not runs.is_cached(tiny_dln.replace(lr=2e-4))
    assert not runs.is_cached(tiny_dln.replace(seed=1))
    assert not runs.is_cached(tiny_dln, [CountingProbe(every=5)])
    assert runs.run_key(tiny_dln, [CountingProbe(every=5)]) != runs.run_key(tiny_dln, [CountingProbe(every=2)])


def test_cache_misses_when_library_code_changes(tmp_path, monkeypatch, tiny_dln):
    copy = tmp_path / "bnlib"
    shutil.copytree(runs._PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runs, "_PACKAGE_DIR", copy)
    before = runs.run_key(tiny_dln)
    (copy / "models.py").write_text((copy / "models.py").read_text() + "\n# a change\n")
    assert runs.run_key(tiny_dln) != before
    assert runs.code_fingerprint() == runs.code_fingerprint()


def test_probe_module_enters_the_fingerprint(tmp_path, tiny_dln):
    source = "from bnlib.probes.base import Probe\nclass P(Probe):\n    name = 'p'\n"
    path = tmp_path / "probe_mod.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("probe_mod", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["probe_mod"] = module
    spec.loader.exec_module(module)
    before = runs.run_key(tiny_dln, [module.P(every=1)])
    path.write_text(source + "# edited\n")
    assert runs.run_key(tiny_dln, [module.P(every=1)]) != before


def test_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / "result.pt"
    store.save_atomic({"v": 1}, target)
    real_save = torch.save

    def broken_save(obj, path):
        real_save({"partial": True}, path)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        store.save_atomic({"v": 2}, target)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(target) == {"v": 1}


def test_interrupted_cached_run_resumes_from_its_checkpoint(tiny_dln, cache, monkeypatch):
    class StopAt(Probe):
        name = "stop"

        def measure(self, ctx: StepContext) -> dict:
            if ctx.step == 12 and not getattr(StopAt, "done", False):
                StopAt.done = True
                raise KeyboardInterrupt
            return {}

    with pytest.raises(KeyboardInterrupt):
        runs.run(tiny_dln, [StopAt(every=1)], progress=False)
    assert list((cache / "checkpoints").glob("*.pt"))
    history = runs.run(tiny_dln, [StopAt(every=1)], progress=False)
    assert history["steps_done"] == tiny_dln.steps
    assert [r["step"] for r in history["probes"]["stop"]] == list(range(tiny_dln.steps))
    assert not list((cache / "checkpoints").glob("*.pt"))


def test_duplicate_probe_names_are_refused(tiny_dln, cache):
    with pytest.raises(ValueError, match="probe names must be unique"):
        runs.run(tiny_dln, [CountingProbe(every=1), CountingProbe(every=2)], progress=False)


@pytest.mark.parametrize("live", [True, False])
def test_run_shows_a_widget_bar_only_where_a_person_watches(tiny_dln, cache, monkeypatch, live):
    """runs.run(progress=True) passes bnlib.widgets' bar (tqdm.auto where a person watches, plain tqdm in
    builds), progress=False a disabled one."""
    import tqdm.auto
    import tqdm.std

    from bnlib import widgets

    made = []
    monkeypatch.setattr(widgets, "in_kernel_with_widgets", lambda: live)
    for module, kind in ((tqdm.auto, "widget"), (tqdm.std, "text")):
        class Recording(module.tqdm):  # a subclass: tqdm's own module reads class attributes through the name
            def __init__(self, *args, _kind=kind, **kwargs) -> None:
                made.append((_kind, kwargs["disable"]))
                super().__init__(*args, **kwargs)
        monkeypatch.setattr(module, "tqdm", Recording)
    runs.run(tiny_dln, progress=True)
    runs.run(tiny_dln.replace(seed=1), progress=False)
    assert made == [("widget" if live else "text", False), ("text", True)]
