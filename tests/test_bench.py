"""The benchmark runs end to end at a tiny size and prints every expected row (figures are never
asserted: speed belongs in the bench's output, not in a timed test)."""

from __future__ import annotations

import nbformat
import pytest
import torch

from bnlib import bench
from bnlib import data as bdata
from bnlib.experiments import common
from bnlib.probes.base import Probe, StepContext


class CountingProbe(Probe):
    """A stand-in default probe: cheap, and counts its calls so the bench's use of the hooks is checked."""

    name = "counting"

    def __init__(self, every: int) -> None:
        super().__init__(every)
        self.calls = 0

    def measure(self, ctx: StepContext) -> dict:
        self.calls += 1
        assert ctx.step % self.every == 0 and ctx.model.training
        return {"loss": float(ctx.loss)}


def test_bench_prints_every_section(tmp_path, monkeypatch, capsys):
    probe = CountingProbe(every=4)
    monkeypatch.setattr(common, "vgg_probes", lambda profile: [probe])
    monkeypatch.setattr(common, "dln_probes", lambda profile: [])
    monkeypatch.setattr(bench, "BOOK_RUNS", (("vgg", "batch", 0.1), ("vgg", "batch", 0.5), ("dln", "none", 1e-6)))
    notebook = tmp_path / "tiny.ipynb"  # section 4 must see the kernel's memory, not only papermill's
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nblock = np.ones(300 * 2**20 // 8)")]
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)

    bench.main(["--profile", "smoke", "--dataset", "synthetic", "--steps", "2", "--warmup", "1",
                "--workers", "0", "2", "--rounds", "1", "--hessian-iters", "5", "--chapter", str(notebook)])
    out = capsys.readouterr().out

    assert "FAILED" not in out, out
    for row in ("ours: bnlib.train.train", "ours: raw inner step", "torchvision DataLoader, num_workers=0",
                "torchvision DataLoader, num_workers=2", "its input pipeline alone", "ru_maxrss MiB",
                "largest DataLoader worker process", "interleaved in one process",
                "(no default probes defined yet)", "tiny.ipynb",
                "vgg/batch", "0.1, 0.5", "dln/none", "projected canonical runs of the book"):
        assert row in out, f"missing {row!r} in:\n{out}"
    assert probe.calls >= 3  # one untimed + two timed measurements
    counting = next(line for line in out.splitlines() if line.startswith("vgg") and "counting" in line)
    assert "error" not in counting
    chapter = next(line for line in out.splitlines() if line.startswith("tiny.ipynb"))
    assert float(chapter.split()[3].replace(",", "")) > 300  # the kernel's 300 MiB array is counted
    assert "ours (bnlib.probes.hessian.top_eigenvalue)" in out and "PyHessian" in out
    try:
        import pyhessian  # noqa: F401
    except ImportError:
        assert "not installed" in out
    else:
        assert "agreement: ours vs PyHessian relative difference" in out
        assert "equal accuracy (within" in out
    assert ("no CUDA device: skipped" in out) != torch.cuda.is_available()


@pytest.mark.parametrize("dataset", ["synthetic", "fashion-mnist"])
def test_torchvision_dataset_gives_the_same_images(dataset):
    """The DataLoader loop trains on the very tensors bnlib.data.load gives (same pixels, padding, scale)."""
    try:
        bdata.resolve_name(dataset, download=False) and bdata._fetch_cached(dataset, False)
    except bdata.DatasetUnavailable:
        pytest.skip(f"{dataset} is not on this machine")
    profile = bench.resolve("smoke")
    ds, channels = bench.torchvision_dataset(profile, dataset)
    ours = bdata.load(dataset, n_train=profile.n_train, n_test=profile.n_test)
    assert len(ds) == len(ours.x_train) and channels == ours.channels
    for i in (0, 7, len(ds) - 1):
        x, y = ds[i]
        assert torch.allclose(x, ours.x_train[i], atol=1e-5) and y == int(ours.y_train[i])


def test_bad_options_name_the_option():
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])
    with pytest.raises(ValueError, match="unknown profile"):
        bench.parse_args(["--profile", "huge"])
