"""Speed and memory, measured against what people would use instead, in one run on one machine.

    python -m bnlib.bench [--profile cpu] [--steps 30] [--device cpu] [--only SECTION ...] [--full]

Sections, one module per group: `loop` our training loop vs the usual torchvision DataLoader +
transforms loop (images/s, ratio, peak memory) and `speedups` channels_last / torch.compile
(bnlib.bench.loop, .speedups); `probes` each default probe's cost (.probes); `hessian` our top Hessian
eigenvalue vs PyHessian's (.hessian); `chapter` peak memory of a chapter under papermill (.builds);
`book` projected time of the book's canonical runs, `gpu` the same at profile paper on CUDA (.book).
Figures are printed, never asserted: a timed test would be flaky on a shared machine, a table measured
in one run is comparable. Where a figure cannot be formed (a time that rounds to 0 on a busy machine)
the bench prints n/a.
"""

from bnlib.bench.cli import DEFAULT_SECTIONS, SECTIONS, main, parse_args

__all__ = ["DEFAULT_SECTIONS", "SECTIONS", "main", "parse_args"]
