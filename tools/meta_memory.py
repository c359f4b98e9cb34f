"""Will the `gpu` profile fit a 16 GB T4? Counted without a GPU: ``python -m tools.meta_memory``.

The full-width VGG-16 is built and stepped on PyTorch's `meta` device (shapes and dtypes, no data), inside a
dispatch mode that tallies the bytes of every storage alive after each operation. It counts what a probed
training step holds at its worst: parameters, their gradients and SGD's momentum, the saved activations of a
forward-backward pass, the copy of the state kept on probed steps, then one Hessian-vector product (a double
backward through a graph built with `create_graph=True`) beside Lanczos's preallocated basis of
`MAX_ITERS` vectors. Not counted (covered by the margin the test states): the CUDA context, cuDNN and cuBLAS
workspaces and the caching allocator's rounding.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python tools/meta_memory.py` from a checkout

from bnlib.losses import cross_entropy  # noqa: E402
from bnlib.models import VGG  # noqa: E402
from bnlib.probes.hessian import MAX_ITERS  # noqa: E402

GiB = 2**30


class LiveStorage(TorchDispatchMode):
    """The bytes of the storages alive after every operation run inside it, and their peak.

    A storage is followed by a weak reference to its C++ object, so tensors that autograd saves for the
    backward pass (no Python object holds them) count until the graph frees them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.storages = {k: v for k, v in self.storages.items() if not v[0].expired()}  # before an address is reused
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                ref = StorageWeakRef(t.untyped_storage())
                self.storages.setdefault(ref.cdata, (ref, t.untyped_storage().nbytes()))
        self.peak = max(self.peak, self.live())
        return out

    def live(self) -> int:
        return sum(n for ref, n in self.storages.values() if not ref.expired())


def probed_step(norm: str = "batch", width: float = 1.0, batch: int = 128, basis: int = MAX_ITERS) -> dict[str, Any]:
    """Peak bytes of a training step and of a probed step (one HVP beside a Lanczos basis) on `meta`."""
    tally = LiveStorage()
    with tally, torch.device("meta"):
        model = VGG(norm, width=width, in_channels=3, num_classes=10).train()
        params = [p for p in model.parameters() if p.requires_grad]
        n = sum(p.numel() for p in params)
        x, y = torch.empty(batch, 3, 32, 32), torch.zeros(batch, dtype=torch.long)
        optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
        for _ in range(2):  # the second step has momentum buffers, as every step after the first does
            optimizer.zero_grad(set_to_none=True)
            cross_entropy(model, x, y).backward()
            optimizer.step()
        step_peak = tally.peak
        momentum = [optimizer.state[p]["momentum_buffer"] for p in params]
        state_copy = [t.detach().clone() for t in params + momentum]  # kept on probed steps (a probe may fail)
        optimizer.zero_grad(set_to_none=True)
        cross_entropy(model, x, y).backward()  # a probed step measures between backward and update
        grads = torch.autograd.grad(cross_entropy(model, x, y), params, create_graph=True)
        lanczos_basis = torch.empty(min(basis, n), n)
        v = lanczos_basis[0]
        parts = [t.view(p.shape) for t, p in zip(torch.split(v, [p.numel() for p in params]), params, strict=True)]
        torch.autograd.grad(grads, params, grad_outputs=parts)
        del state_copy, grads
    return {"norm": norm, "width": width, "batch": batch, "parameters": n, "params_bytes": 4 * n,
            "basis_bytes": 4 * n * min(basis, n), "train_step_peak": step_peak, "probed_step_peak": tally.peak}


T4_USABLE = 15_360 * 2**20  # what nvidia-smi reports on a 16 GB T4 (ECC on)
CONTEXT_AND_WORKSPACE = int(1.5 * GiB)  # CUDA context (~0.4 GiB) + cuDNN/cuBLAS workspaces (up to ~1 GiB)
ALLOCATOR_FACTOR = 1.2  # the caching allocator's block rounding and fragmentation


def fits_t4(peak: int) -> bool:
    """Whether a tallied peak, with the margins above, fits a T4."""
    return math.ceil(peak * ALLOCATOR_FACTOR) + CONTEXT_AND_WORKSPACE <= T4_USABLE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(f"{'norm':6} {'params':>11} {'train step':>11} {'probed step':>12} {'with margins':>13}  fits a T4")
    worst = True
    for norm in ("none", "batch", "l1", "l2", "linf"):
        r = probed_step(norm, args.width, args.batch)
        margin = r["probed_step_peak"] * ALLOCATOR_FACTOR + CONTEXT_AND_WORKSPACE
        ok = fits_t4(r["probed_step_peak"])
        worst &= ok
        print(f"{norm:6} {r['parameters']:>11,} {r['train_step_peak'] / GiB:>9.2f} G "
              f"{r['probed_step_peak'] / GiB:>10.2f} G {margin / GiB:>11.2f} G  {'yes' if ok else 'NO'}")
    print(f"T4 usable: {T4_USABLE / GiB:.2f} GiB; margins: x{ALLOCATOR_FACTOR} + {CONTEXT_AND_WORKSPACE / GiB:.1f} GiB")
    return 0 if worst else 1


if __name__ == "__main__":
    sys.exit(main())
