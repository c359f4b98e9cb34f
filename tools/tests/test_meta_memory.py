"""The meta-device memory tally: right on cases counted by hand, and the `gpu` profile's probed step fits a T4."""

from __future__ import annotations

import torch

from bnlib.probes.hessian import MAX_ITERS
from tools import meta_memory
from tools.meta_memory import GiB, LiveStorage, fits_t4, probed_step


def test_the_tally_counts_what_autograd_saves_and_frees_it_after_backward():
    n = 1000
    tally = LiveStorage()
    with tally, torch.device("meta"):
        z = torch.empty(n, requires_grad=True)
        out = z.exp().sum()  # exp's result is saved for backward; no Python name holds it
        assert tally.live() == 4 * n + 4 * n + 4  # z, exp(z), the scalar sum
        view = z[: n // 2]
        assert tally.live() == 4 * n + 4 * n + 4  # a view shares z's storage: nothing new
        out.backward()
        assert tally.live() == 4 * n + 4 * n + 4  # z, z.grad, out; exp(z) and its gradient are freed
        del view
    assert tally.peak >= 4 * n * 3  # during backward: z, exp(z) and the incoming gradient at least


def test_a_training_step_counts_parameters_gradients_and_momentum():
    r = probed_step("none", width=1 / 16, batch=4, basis=1)
    assert r["train_step_peak"] >= 3 * r["params_bytes"]  # weights, gradients, momentum buffers
    wide = probed_step("none", width=1 / 16, batch=4, basis=MAX_ITERS)
    assert wide["probed_step_peak"] - r["probed_step_peak"] >= (MAX_ITERS - 1) * r["params_bytes"]


def test_the_gpu_profiles_probed_step_fits_a_t4_with_its_margins():
    r = probed_step("linf", width=1.0, batch=128)  # the most memory of the five norms (l-inf keeps a max index)
    assert r["parameters"] > 14_000_000
    assert r["basis_bytes"] > 2.5 * GiB  # Lanczos's basis is most of it: checked, not assumed
    assert fits_t4(r["probed_step_peak"]), r
    assert not fits_t4(14 * GiB)  # the check can fail


def test_the_command_prints_every_norm(capsys):
    assert meta_memory.main(["--width", "0.0625", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert all(norm in out for norm in ("none", "batch", "l1", "l2", "linf")) and "fits a T4" in out
