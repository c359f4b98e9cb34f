"""The benchmark runs end to end at a tiny size and prints every expected row; its figures are never
asserted (speed belongs in the bench's output, not in a timed test), its structure and its guards are:
a busy machine may make it print odd numbers or n/a, never crash."""

from __future__ import annotations

import re
import sys
import time

import nbformat
import pytest
import torch
from torch import nn

from bnlib import data as bdata
from bnlib.experiments import common
from bnlib.models import VGG
from bnlib.probes.base import Probe, StepContext
from bnlib.probes.hessian import lanczos
from bnlib.profiles import resolve
from tools import bench
from tools.bench import builds, hardware, hessian, loop

TINY = ["--profile", "smoke", "--dataset", "synthetic", "--steps", "2", "--warmup", "1", "--rounds", "1",
        "--hessian-iters", "5", "--matmul-size", "64"]


class CountingProbe(Probe):
    """A stand-in default probe: cheap, and counts its calls (over the copies the bench makes of it)."""

    name = "counting"
    calls = 0

    def measure(self, ctx: StepContext) -> dict:
        type(self).calls += 1
        assert ctx.step % self.every == 0 and ctx.model.training
        return {"loss": float(ctx.loss)}


@pytest.fixture
def tiny_book(monkeypatch):
    """One counting VGG probe, no DLN probe, three canonical runs: every section at its smallest."""
    CountingProbe.calls = 0
    monkeypatch.setattr(common, "default_probes",
                        lambda profile, model: [CountingProbe(every=4)] if model == "vgg" else [])
    monkeypatch.setattr(common, "REGISTRY", (common.Reads("tiny", "vgg", ("batch",), (0.1, 0.5), ("counting",)),
                                             common.Reads("tiny-dln", "dln", ("none",), (1e-6,), ())))


def test_bench_prints_every_default_section(tmp_path, tiny_book, capsys):
    notebook = tmp_path / "tiny.ipynb"  # section chapter must see the kernel's memory, not only papermill's
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nblock = np.ones(300 * 2**20 // 8)")]
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)

    bench.main(TINY + ["--workers", "0", "2", "--chapter", str(notebook)])
    out = capsys.readouterr().out

    assert "FAILED" not in out, out
    for row in ("ours: bnlib.train.train", "ours: raw inner step", "torchvision DataLoader, num_workers=0",
                "torchvision DataLoader, num_workers=2", "its input pipeline alone", "ru_maxrss MiB",
                "largest DataLoader worker process", "interleaved in one process",
                "channels_last=False, compile=False", "channels_last=True, compile=True",
                "keep_freed_memory", "page faults/step",
                "utilization (training step / machine peak", "loop overhead (bnlib.train.train step / bare eager",
                "what would get closer", "widened", "(no default probes defined yet)", "tiny.ipynb",
                "vgg/batch", "0.1, 0.5", "dln/none", "projected canonical runs of the book",
                "Deep linear network: a 60-step run"):
        assert row in out, f"missing {row!r} in:\n{out}"
    assert CountingProbe.calls >= 2  # one timed measurement by each clock (wall, CPU)
    counting = next(line for line in out.splitlines() if line.startswith("vgg") and "counting" in line)
    assert "error" not in counting
    layers = [line.split()[0] for line in out.splitlines() if re.match(r"#\d+ ", line)]
    assert layers == [f"#{k}" for k in range(1, 15)]  # 13 convs and the classifier, each timed
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
    assert "Cold book build" not in out  # opt-in only


def test_a_frozen_clock_prints_na_instead_of_crashing(tiny_book, monkeypatch, capsys):
    """Every measured time 0 (a coarse clock, a busy machine): each figure that divides by one is n/a."""
    monkeypatch.setattr(time, "perf_counter", lambda: 1.0)
    monkeypatch.setattr(time, "process_time", lambda: 1.0)
    hardware.matmul_peak.cache_clear()
    bench.main(TINY + ["--only", "utilization", "layers", "probes", "dln", "hessian", "book"])
    hardware.matmul_peak.cache_clear()
    out = capsys.readouterr().out
    assert "FAILED" not in out, out
    utilization = next(line for line in out.splitlines() if line.startswith("utilization (training step"))
    assert utilization.endswith(": n/a")
    assert "loop overhead (bnlib.train.train step / bare eager step - 1): n/a" in out
    assert "projected canonical runs of the book at profile smoke on cpu: n/a min wall" in out


def test_the_dln_section_times_each_canonical_run_with_and_without_its_probes(capsys):
    """Section dln at profile smoke: every l_p norm's canonical run, the autograd step beside the written-out one,
    each probe's records and the Hessian's products, and the bound the tests hold the probes to."""
    bench.main(TINY + ["--only", "dln", "--dln-autograd-steps", "10"])
    out = capsys.readouterr().out
    assert "FAILED" not in out, out
    for norm in ("none", "batch", "l1", "l2", "linf"):
        row = next(line for line in out.splitlines() if line.startswith(f"dln/{norm} lr 1e-06"))
        assert ("landscape" in row) and (("hessian" in row) == (norm in ("none", "batch")))
    hessian = next(line for line in out.splitlines() if line.startswith("dln/batch") and " hessian " in line)
    assert "products each" in hessian and "converged" in hessian
    assert f"bound at the cpu profile: {100 * common.DLN_PROBE_SHARE:.1f}%" in out
    assert "10 steps timed and scaled to 60" in out


def test_the_loop_report_survives_zero_and_missing_times(capsys):
    """The known failure on a busy machine: a DataLoader or our time rounding to 0 divided by zero."""
    ours = {"rows": [{"loop": "ours: bnlib.train.train", "images_per_s": None},
                     {"loop": "ours: raw inner step (tensor split, index slices)", "images_per_s": 0.0}],
            "dataset": "synthetic", "n_train": 512, "first_run_rss_mb": 1.0, "rss_mb": 1.0, "baseline_rss_mb": 1.0,
            "cuda_peak_mb": None, "threads": 1}
    tv = {"rows": [{"loop": "torchvision DataLoader, num_workers=0", "images_per_s": 0.0}], "rss_mb": 1.0,
          "cuda_peak_mb": None, "threads": 1}
    loop.report_loop([(ours, tv)], {"ours": 0.0, "tv": 0.0}, 32, 2, 1)
    out = capsys.readouterr().out
    assert "ours/DataLoader speed ratio n/a" in out and "n/a" in out.split("ours/this")[1]


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_the_layer_flop_count_agrees_with_torch(norm):
    """Our analytic count (backward = 2 x forward, no input gradient for the first layer) is torch's."""
    torch.manual_seed(0)
    model = VGG(norm, 1 / 16, in_channels=3)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    costs = hardware.layer_costs(model, x)
    assert [c.number for c in costs] == list(range(1, 15))
    assert costs[0].backward == costs[0].forward and costs[1].backward == 2 * costs[1].forward
    assert sum(c.total for c in costs) == hardware.flop_counter_total(model, x, y)


class Quadratic(nn.Module):
    """loss = w.A.w / 2 with a known Hessian A: the products and estimates can be checked exactly."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = a
        self.w = nn.Parameter(torch.ones(len(a), dtype=a.dtype))


def quadratic_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model.w @ model.a @ model.w / 2


def test_gradient_hooks_count_products_and_read_power_iteration():
    a = torch.diag(torch.tensor([5.0, 2.0, 1.0, -1.0], dtype=torch.float64))
    model, x = Quadratic(a), torch.zeros(1)
    with hessian.counted(model) as calls:
        result = lanczos(model, quadratic_loss, x, x, iters=10, tol=1e-12, which="top")
    assert calls.products == result["iters"] >= 1 and result["top_eig"] == pytest.approx(5.0)
    with hessian.counted(model) as calls:  # power iteration, as PyHessian runs it
        (g,) = torch.autograd.grad(quadratic_loss(model, x, x), [model.w], create_graph=True)
        v = torch.ones(4, dtype=torch.float64) / 2
        for _ in range(60):
            (hv,) = torch.autograd.grad(g, [model.w], grad_outputs=v, retain_graph=True)
            v = hv / hv.norm()
    assert calls.products == 60 and len(calls.estimates) == 60
    assert torch.isnan(torch.tensor(calls.estimates[0])) and calls.estimates[-1] == pytest.approx(5.0)


@pytest.mark.parametrize("dataset", ["synthetic", "fashion-mnist"])
def test_torchvision_dataset_gives_the_same_images(dataset):
    """The DataLoader loop trains on the very tensors bnlib.data.load gives (same pixels, padding, scale)."""
    try:
        bdata.load(dataset, n_train=1, n_test=1, download=False)
    except bdata.DatasetUnavailable:
        pytest.skip(f"{dataset} is not on this machine")
    profile = resolve("smoke")
    ds, channels = loop.torchvision_dataset(profile, dataset)
    ours = bdata.load(dataset, n_train=profile.n_train, n_test=profile.n_test)
    assert len(ds) == len(ours.x_train) and channels == ours.channels
    for i in (0, 7, len(ds) - 1):
        x, y = ds[i]
        assert torch.allclose(x, ours.x_train[i], atol=1e-5) and y == int(ours.y_train[i])


def test_measure_command_reports_time_of_children_and_errors(tmp_path):
    ok = builds.measure_command([sys.executable, "-c", "sum(i * i for i in range(3 * 10**6))"], cwd=tmp_path)
    assert ok["rc"] == 0 and "error" not in ok and ok["cpu_seconds"] > 0 and ok["rss_mb"] > 0
    bad = builds.measure_command([sys.executable, "-c", "raise SystemExit('no book here')"], cwd=tmp_path)
    assert bad["rc"] == 1 and bad["error"] == "no book here"
    cmd = builds.book_build_command(tmp_path / "out")
    assert cmd[1] == "build" and cmd[cmd.index("--path-output") + 1] == str(tmp_path / "out")


def test_sections_and_bad_options():
    assert bench.parse_args([]).only == list(bench.DEFAULT_SECTIONS)
    assert "book-build" in bench.SECTIONS and "book-build" not in bench.DEFAULT_SECTIONS
    assert bench.parse_args(["--only", "book-build"]).only == ["book-build"]
    for bad in (["--steps", "0"], ["--matmul-size", "0"], ["--only", "nothing"], ["--hessian-tol", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
    with pytest.raises(ValueError, match="unknown profile"):
        bench.parse_args(["--profile", "huge"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keep_freed_memory_removes_the_steps_page_faults():
    """A VGG step's freed activations are reused: each side in its own process, counted in page faults (not time)."""
    from tools.bench import allocator

    # the cpu profile's 1/8-width batch of 128 (smoke's activations are too small to leave glibc's heap)
    # 10 warm-up steps let the kept heap reach its size (with 5, up to 128 faults/step remained)
    args = bench.parse_args(["--profile", "cpu", "--dataset", "synthetic", "--steps", "30", "--warmup", "10"])
    default, kept = allocator._child(args, keep=False), allocator._child(args, keep=True)
    assert default["faults"] > 500  # glibc's defaults map fresh pages for the activations every step
    assert kept["faults"] < default["faults"] / 10
