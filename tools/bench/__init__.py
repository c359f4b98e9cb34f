"""Speed and memory, measured against what people would use instead and against the machine, in one run.

    python -m tools.bench [--profile cpu] [--steps 30] [--device cpu] [--only SECTION ...] [--full]

Sections, one module per group:
- `loop` our training loop vs the usual torchvision DataLoader + transforms loop (images/s, ratio,
  peak memory) (tools.bench.loop); `speedups` channels_last and torch.compile (.speedups);
- `utilization` the VGG step's FLOP/s against the machine's fp32 peak, and our loop against a bare
  eager step; `layers` per-layer times and FLOP/s, and what would reach the peak (.hardware);
- `probes` each default probe's cost (.probes); `dln` a deep linear network run at the profile's length with
  and without its probes, and the autograd step it replaced (.dln); `hessian` our top Hessian eigenvalue vs
  PyHessian's (.hessian);
- `chapter` peak memory of a chapter under papermill; opt-in, `book-build` a cold jupyter-book
  build's wall and CPU time (.builds);
- `book` projected time of the book's canonical runs, `gpu` the same at profile paper on CUDA (.book).
Figures are printed, never asserted: a timed test would be flaky on a shared machine, a table measured
in one run is comparable. Where a figure cannot be formed (a time that rounds to 0 on a busy machine)
the bench prints n/a.
"""

from tools.bench.cli import DEFAULT_SECTIONS, SECTIONS, main, parse_args

__all__ = ["DEFAULT_SECTIONS", "SECTIONS", "main", "parse_args"]
