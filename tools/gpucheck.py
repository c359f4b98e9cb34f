"""One command that proves a GPU machine: ``python tools/gpucheck.py [--device cuda|cpu] [--out gpucheck.json]``.

Sections, each with a status (``ok``, ``failed: ...``, ``not run: no CUDA``), printed as a table and written to the JSON
file after every section (an interrupted check keeps what it measured):

- ``smoke book``: every run the book plans at profile ``smoke`` (synthetic images), trained through the library into a
  fresh cache (VGG runs on the device; the deep linear network on the CPU, as the library places it);
- ``full width``: ``--steps`` steps of the full-width VGG-16 at batch 128 for each norm, every probe at step 0:
  steps per second and peak memory;
- ``repeat and resume``: a short run trained twice, compared bitwise, and stopped halfway then resumed from its
  checkpoint, compared bitwise with the uninterrupted one;
- ``cpu vs cuda``: the first steps of one short run on the CPU and on CUDA, agreeing within a stated tolerance;
- ``hessian tf32``: the Hessian's top eigenvalue at the full-width initialisation in true fp32 and with TF32 allowed;
- ``lanczos share``: the share of a 20-product Lanczos measurement not spent in Hessian-vector products
  (reorthogonalisation and the small eigenproblems).

Synthetic images throughout (a GPU machine may have no network and no dataset). Runs from the repository root; needs
torch, numpy, matplotlib, tqdm (no Jupyter).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python tools/gpucheck.py` from a checkout

from bnlib import book, execution, runs  # noqa: E402
from bnlib.experiments.common import default_probes  # noqa: E402
from bnlib.models import NORMS  # noqa: E402
from bnlib.probes.hessian import lanczos  # noqa: E402
from bnlib.profiles import PROFILES  # noqa: E402
from bnlib.train import RunConfig, build_task, train  # noqa: E402

NO_CUDA = "not run: no CUDA"
CPU_CUDA_STEPS, CPU_CUDA_RTOL = 5, 1e-4  # the first steps agree to 1e-4 relative: fp32 sums in another order


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # the process's peak, on Linux in KiB


def _small(norm: str = "batch", steps: int = 12) -> RunConfig:
    return RunConfig(model="vgg", norm=norm, lr=0.1, steps=steps, batch_size=32, width=1 / 16, dataset="synthetic",
                     n_train=256, n_test=64, eval_every=steps)


def smoke_book(device: torch.device, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    planned = book.book_plan(book.common("smoke", "synthetic"))
    began = time.perf_counter()
    for config, probes in planned:  # the VGG on the device; the DLN where the library puts it (the CPU)
        runs.run(config, probes, device=device if config.model == "vgg" else None, progress=False, cache=cache)
    done = [runs.cached(c, p, cache=cache) for c, p in planned]
    made_on = sorted({h["execution"]["device_name"] for h in done if h})
    return {"status": "ok" if all(done) else "failed: a run is missing", "runs": len(planned),
            "seconds": round(time.perf_counter() - began, 1), "made_on": made_on}


def full_width(device: torch.device, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    steps = args.steps
    probes = default_probes(PROFILES["gpu"].replace(probe_every=steps), "vgg")  # every probe at step 0 (Hessian too)
    out: dict[str, Any] = {"steps": steps, "width": args.width, "norms": {}}
    for norm in NORMS:
        config = RunConfig(model="vgg", norm=norm, lr=0.1, steps=steps, batch_size=128, width=args.width,
                           dataset="synthetic", n_train=1024, n_test=128, eval_every=steps)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        began = time.perf_counter()
        history = train(config, probes, device=device, progress=False)
        _sync(device)
        seconds = time.perf_counter() - began
        out["norms"][norm] = {"steps_per_s": round(steps / seconds, 2), "seconds_with_probes": round(seconds, 2),
                              "peak_gib": round(_peak_bytes(device) / 2**30, 2),
                              "last_loss": float(history["step_loss"][-1])}
    out["status"] = "ok"
    return out


def repeat_and_resume(device: torch.device, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    config = _small(steps=20)
    probes = default_probes(PROFILES["smoke"].replace(probe_every=5), "vgg")
    first = train(config, probes, device=device, progress=False)
    second = train(config, probes, device=device, progress=False)
    checkpoint = cache / "resume.pt"
    train(config, probes, device=device, checkpoint=checkpoint, stop_after=10, progress=False)
    resumed = train(config, probes, device=device, checkpoint=checkpoint, progress=False)
    same = {"rerun": torch.equal(torch.as_tensor(first["step_loss"]), torch.as_tensor(second["step_loss"])),
            "resume": torch.equal(torch.as_tensor(first["step_loss"]), torch.as_tensor(resumed["step_loss"])),
            "probes": repr(first["probes"]) == repr(second["probes"])}
    return {"status": "ok" if all(same.values()) else f"failed: not bitwise ({same})", "bitwise": same}


def cpu_vs_cuda(device: torch.device, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    if device.type != "cuda":
        return {"status": NO_CUDA}
    config = _small(steps=CPU_CUDA_STEPS)
    losses = [torch.as_tensor(train(config, device=d, progress=False)["step_loss"], dtype=torch.float64)
              for d in ("cpu", device)]
    rel = float(((losses[0] - losses[1]).abs() / losses[0].abs()).max())
    return {"status": "ok" if rel <= CPU_CUDA_RTOL else f"failed: {rel:.2e} > {CPU_CUDA_RTOL:g}",
            "max_rel_diff": rel, "steps": CPU_CUDA_STEPS, "tolerance": CPU_CUDA_RTOL}


@contextlib.contextmanager
def _tf32() -> Iterator[None]:
    """TF32 allowed for matrix products and convolutions (cuDNN's default), in the installed torch's own API."""
    settings = [(owner, name, "tf32" if isinstance(value, str) else True)
                for _, owner, name, value in execution._numerics() if name in ("fp32_precision", "allow_tf32")]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in settings]
    try:
        for owner, name, value in settings:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def hessian_tf32(device: torch.device, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    if device.type != "cuda":
        return {"status": NO_CUDA}
    task = build_task(RunConfig(model="vgg", norm="none", width=args.width, dataset="synthetic", n_train=128,
                                n_test=16), device)
    x, y = task.x_train[:128], task.y_train[:128]
    with execution.exact_numerics(device):
        fp32 = lanczos(task.model, task.loss_fn, x, y, iters=20, tol=1e-3, which="top")["top_eig"]
    with _tf32():
        tf32 = lanczos(task.model, task.loss_fn, x, y, iters=20, tol=1e-3, which="top")["top_eig"]
    return {"status": "ok", "top_eig_fp32": fp32, "top_eig_tf32": tf32, "rel_diff": abs(tf32 - fp32) / abs(fp32)}


def lanczos_share(device: torch.device, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    task = build_task(RunConfig(model="vgg", norm="batch", width=args.width, dataset="synthetic", n_train=128,
                                n_test=16),
                      device)
    x, y = task.x_train[:128], task.y_train[:128]
    params = [p for p in task.model.parameters() if p.requires_grad]
    with execution.exact_numerics(device):
        _sync(device)
        began = time.perf_counter()
        result = lanczos(task.model, task.loss_fn, x, y, iters=20, tol=0.0)
        _sync(device)
        total = time.perf_counter() - began
        grads = torch.autograd.grad(task.loss_fn(task.model, x, y), params, create_graph=True)
        vs = [torch.randn_like(p) for p in params]
        _sync(device)
        began = time.perf_counter()
        for _ in range(result["iters"]):
            torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)
        _sync(device)
        hvps = time.perf_counter() - began
    return {"status": "ok", "products": result["iters"], "seconds": round(total, 3), "hvp_seconds": round(hvps, 3),
            "share_outside_hvps": round(max(0.0, 1 - hvps / total), 3)}


SECTIONS: dict[str, Callable[[torch.device, Path, argparse.Namespace], dict[str, Any]]] = {
    "smoke book": smoke_book, "full width": full_width, "repeat and resume": repeat_and_resume,
    "cpu vs cuda": cpu_vs_cuda, "hessian tf32": hessian_tf32, "lanczos share": lanczos_share}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/gpucheck.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("gpucheck.json"))
    parser.add_argument("--steps", type=int, default=50, help="full-width steps per norm (default 50)")
    parser.add_argument("--width", type=float, default=1.0, help="VGG width of the full-width sections (default 1)")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    record: dict[str, Any] = {
        "device": execution.device_name(device) if device.type == "cpu" or torch.cuda.is_available() else "none",
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "width": args.width, "sections": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            began = time.perf_counter()
            if device.type == "cuda" and not torch.cuda.is_available():
                result: dict[str, Any] = {"status": NO_CUDA}
            else:
                try:
                    result = SECTIONS[name](device, Path(tmp), args)
                except Exception as err:  # a failed section is a result: record it and go on
                    result = {"status": f"failed: {type(err).__name__}: {err}"[:300]}
            result["wall_s"] = round(time.perf_counter() - began, 1)
            record["sections"][name] = result
            args.out.write_text(json.dumps(record, indent=1) + "\n")
            print(f"{name:18} {result['status']:40} {result['wall_s']:8.1f} s", flush=True)
    failed = [n for n, r in record["sections"].items() if r["status"].startswith("failed")]
    print(f"{record['device']}, torch {record['torch']}: {len(failed)} failed; written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
