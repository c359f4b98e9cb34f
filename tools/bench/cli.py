"""The command line of `python -m tools.bench`: options, and the sections run in order, each guarded so
one broken section cannot hide the others' figures."""

from __future__ import annotations

import argparse
import os
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bnlib import data as bdata
from bnlib.profiles import resolve
from tools.bench import allocator
from tools.bench.book import section_book, section_gpu
from tools.bench.builds import DEFAULT_CHAPTER, section_book_build, section_chapter
from tools.bench.dln import section_dln
from tools.bench.hardware import section_layers, section_utilization
from tools.bench.hessian import section_hessian
from tools.bench.loop import child_main, section_loop
from tools.bench.probes import section_probes
from tools.bench.speedups import section_speedups
from tools.bench.util import peak_rss_mb

DEFAULT_SECTIONS = ("loop", "speedups", "allocator", "utilization", "layers", "probes", "dln", "hessian", "chapter",
                    "book", "gpu")
OPT_IN_SECTIONS = ("book-build",)  # a cold book build: half an hour at profile cpu
SECTIONS = DEFAULT_SECTIONS + OPT_IN_SECTIONS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description="Speed and memory of bnlib, "
                                     "measured against the alternatives and the machine, in one run.")
    parser.add_argument("--profile", default="cpu", help="profile of the measured runs (default: cpu)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per loop (default: 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (default: 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", default="auto", choices=bdata.DATASETS)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(DEFAULT_SECTIONS), metavar="SECTION",
                        help=f"sections to run, of {', '.join(SECTIONS)} (default: all but {OPT_IN_SECTIONS[0]})")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads for every measurement (default: torch's, i.e. OMP_NUM_THREADS)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the timed comparisons, "
                        "best kept (default: 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    parser.add_argument("--probe-reps", type=int, default=2, help="timed measurements per probe (default: 2)")
    parser.add_argument("--matmul-size", type=int, default=2048,
                        help="n of the n x n fp32 matmul that measures the machine's peak (default: 2048)")
    parser.add_argument("--dln-autograd-steps", type=int, default=1000,
                        help="steps of each DLN run timed on the autograd path, scaled to the run (default: 1000)")
    parser.add_argument("--hessian-iters", type=int, default=100,
                        help="cap on Hessian-vector products per method (PyHessian default: 100)")
    parser.add_argument("--hessian-tol", type=float, default=1e-3,
                        help="tolerance of each method's stopping rule (PyHessian default: 1e-3)")
    parser.add_argument("--no-hessian-reference", dest="hessian_reference", action="store_false",
                        help="skip the tight-tolerance PyHessian reference value")
    parser.add_argument("--chapter", nargs="+", default=[DEFAULT_CHAPTER], help="notebook(s) for section chapter")
    parser.add_argument("--full", action="store_true", help="also run the chapter at profile cpu (minutes)")
    parser.add_argument("--child", choices=("ours", "torchvision", "interleaved", *allocator.CHILDREN.values()),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("steps", "warmup", "threads", "probe_reps", "hessian_iters", "rounds", "matmul_size",
                 "dln_autograd_steps"):
        minimum = 0 if name == "warmup" else 1
        if getattr(args, name) < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {getattr(args, name)}")
    if any(k < 0 for k in args.workers):
        parser.error(f"--workers must be >= 0, got {args.workers}")
    if not args.hessian_tol > 0:
        parser.error(f"--hessian-tol must be > 0, got {args.hessian_tol}")
    resolve(args.profile)  # unknown profile: a clear error before any work
    return args


def sections(args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    """Each section by name; `probes` hands its costs to `book`, which projects run times with them."""
    probes: list[dict[str, Any]] = []
    return {
        "loop": lambda: section_loop(args, args.profile, args.device),
        "speedups": lambda: section_speedups(args, args.profile, args.device),
        "allocator": lambda: allocator.section_allocator(args),
        "utilization": lambda: section_utilization(args, args.profile, args.device),
        "layers": lambda: section_layers(args, args.profile, args.device),
        "probes": lambda: probes.extend(section_probes(args, args.profile, args.device)),
        "dln": lambda: section_dln(args, args.profile),
        "hessian": lambda: section_hessian(args, args.profile, args.device),
        "chapter": lambda: section_chapter(args, ["smoke", "cpu"] if args.full else ["smoke"]),
        "book": lambda: section_book(args, args.profile, args.device, probes),
        "gpu": lambda: section_gpu(args, "probes" in args.only),
        "book-build": lambda: section_book_build(args.profile),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        (allocator.child_main if args.child in allocator.CHILDREN.values() else child_main)(args)
        return
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    print(f"tools.bench: profile {args.profile}, device {args.device}, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {platform.processor() or platform.machine()}")
    print(f"dataset: {bdata.resolve_name(args.dataset)}; sections: {' '.join(args.only)}", flush=True)
    steps = sections(args)
    for name in SECTIONS:
        if name in args.only:
            t0 = time.perf_counter()
            try:
                steps[name]()
            except Exception:  # one broken section must not hide the others' figures
                print(f"section {name} FAILED:\n{traceback.format_exc()}", flush=True)
            print(f"[section {name}: {time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"\ntotal bench time {time.perf_counter() - began:.0f} s; load average now {os.getloadavg()[0]:.2f}; "
          f"peak RSS of this process {peak_rss_mb():.0f} MiB")
