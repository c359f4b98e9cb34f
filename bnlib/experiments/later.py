"""Chapter 7's runs and measurements: what later work said about BatchNorm, measured with the book's probes.

Three findings, each on a family of networks of several depths (the choices and what they cost in fidelity are
the chapter's to explain):
1. depth and smoothness (Yao et al. 2020): VGG-11, -13 and -16 at the profile's width, and the deep linear network
   at 5, 25 and 50 layers, each Standard and +BN with the landscape and Hessian probes (VGG-16 and DLN-25 are the
   canonical runs of chapter 4);
2. gradients at initialisation (Yang et al. 2019): the fully connected ReLU network (`bnlib.models.MLP`) at depths
   up to 48, measured at its initialisation on one batch (no training, so no run cache);
3. the learning rate (Bjorck et al. 2018): the same MLPs, and the DLNs, trained briefly over a log grid of rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bnlib import data as bdata
from bnlib import losses
from bnlib.experiments.common import dln_config, planned, train_planned, vgg_config
from bnlib.models import DLN, MLP
from bnlib.probes import landscape
from bnlib.probes.base import StepContext
from bnlib.probes.hessian import STATISTICS, HessianProbe, finite_difference_hessian, lanczos
from bnlib.profiles import Profile
from bnlib.record import Run
from bnlib.runs import Planned
from bnlib.train import RunConfig

NORMS = {"Standard": "none", "+BN": "batch"}
VGG_DEPTHS = (11, 13, 16)  # 16: the canonical runs
DLN_DEPTHS = (5, 25, 50)  # 25: the canonical runs
VGG_LR, DLN_LR = 0.1, 1e-6  # the paper's, as in chapter 4
MLP_WIDTH = 128
INIT_DEPTHS = (4, 8, 16, 32, 48)  # section 2: gradients at initialisation
LR_DEPTHS = (4, 16, 48)  # section 3: the MLPs trained over the grid
MLP_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
DLN_LRS = (1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4)
# A run "trains" when the mean training loss over its last tenth of steps is finite and below this fraction of its
# first step's loss: fixed before the grid was graded. A network that only ever reaches the loss of a constant
# guess would pass a bare "below the initial loss" whenever it starts above it (an MLP's first loss is 2.5-4.4).
TRAINS_BELOW = 0.75


def mlp_steps(profile: Profile) -> int:
    """The grid's length: twice the interactive controls' (300 steps at the cpu profile)."""
    return 2 * profile.widget_steps


def dln_grid_steps(profile: Profile) -> int:
    """The DLN grid's length: a tenth of a canonical DLN run (1,000 steps at the cpu profile)."""
    return max(1, profile.dln_steps // 10)


def depth_plan(profile: Profile, dataset: str = "auto", seed: int = 0) -> dict[tuple[str, int, str], Planned]:
    """Section 1's runs: {(model, depth, label): planned}, the canonical ones at the paper's depths."""
    out: dict[tuple[str, int, str], Planned] = {}
    for label, norm in NORMS.items():
        for depth in VGG_DEPTHS:
            if depth == 16:
                out["vgg", depth, label] = planned(profile, "fig4", norm, VGG_LR, dataset=dataset, seed=seed)
            else:
                config = vgg_config(profile, norm, VGG_LR, dataset, seed).replace(vgg_depth=depth)
                out["vgg", depth, label] = config, [p for p in landscape.vgg_probes(profile)
                                                    if p.name in ("landscape", "hessian")]
        for depth in DLN_DEPTHS:
            if depth == 25:
                out["dln", depth, label] = planned(profile, "fig10", norm, DLN_LR, seed=seed)
            else:
                out["dln", depth, label] = (dln_config(profile, norm, DLN_LR, seed).replace(dln_depth=depth),
                                            landscape.dln_probes(profile))
    return out


def mlp_config(profile: Profile, norm: str, lr: float, depth: int, dataset: str = "auto", seed: int = 0) -> RunConfig:
    """One MLP run of the learning-rate grid."""
    steps = mlp_steps(profile)
    return RunConfig(model="mlp", norm=norm, lr=lr, steps=steps, batch_size=profile.batch_size, seed=seed,
                     dataset=dataset, n_train=profile.n_train, n_test=profile.n_test, eval_every=max(1, steps // 3),
                     mlp_depth=depth, mlp_width=MLP_WIDTH)


def lr_plan(profile: Profile, dataset: str = "auto", seed: int = 0) -> dict[tuple[str, int, str, float], Planned]:
    """Section 3's runs, no probes: {(model, depth, label, lr): planned} over both grids."""
    out: dict[tuple[str, int, str, float], Planned] = {}
    steps = dln_grid_steps(profile)
    for label, norm in NORMS.items():
        for depth in LR_DEPTHS:
            for lr in MLP_LRS:
                out["mlp", depth, label, lr] = mlp_config(profile, norm, lr, depth, dataset, seed), []
        for depth in DLN_DEPTHS:
            for lr in DLN_LRS:
                config = dln_config(profile, norm, lr, seed, steps=steps)
                out["dln", depth, label, lr] = config.replace(dln_depth=depth, eval_every=max(1, steps // 4)), []
    return out


def trains(run: Run | dict[str, Any]) -> bool:
    """Whether a run trained (`TRAINS_BELOW`): finite, and its last tenth's mean loss below that share of step 0's."""
    losses_ = np.asarray(Run.of(run).history["step_loss"], dtype=float)
    tail = losses_[int(0.9 * len(losses_)):]
    return bool(np.isfinite(losses_[0]) and np.all(np.isfinite(tail)) and tail.mean() < TRAINS_BELOW * losses_[0])


def largest_trained(runs_by_lr: dict[float, Run | dict[str, Any]]) -> float:
    """The largest rate of a grid at which the run trained (NaN when none did): one seed's."""
    good = [lr for lr, run in runs_by_lr.items() if trains(run)]
    return max(good) if good else math.nan


# --- section 2: gradients at initialisation (measured, not trained) ---------------------------------------------

def init_gradients(norm: str, depth: int, seed: int, dataset: str = "auto", batch_size: int = 128,
                   width: int = MLP_WIDTH) -> np.ndarray:
    """The norm of the loss's gradient with respect to each linear layer's weights (layer 1 first) of a freshly
    initialised MLP (`seed`) on one batch of the training images, in training mode (batch statistics)."""
    images = bdata.load(dataset, "cpu", n_train=max(batch_size, 512), n_test=1)
    torch.manual_seed(seed)
    model = MLP(norm, depth, width, images.x_train[0].numel(), images.num_classes).train()
    idx = torch.randperm(len(images.x_train), generator=torch.Generator().manual_seed(seed))[:batch_size]
    loss = losses.cross_entropy(model, images.x_train[idx], images.y_train[idx])
    weights = [model.layer(k).weight for k in range(1, depth + 1)]
    return np.array([float(g.norm()) for g in torch.autograd.grad(loss, weights)])


def explosion(grads: np.ndarray) -> float:
    """How much the gradient grows from the last hidden layer back to the second (both width x width, so the shapes
    do not differ): ||dL/dW_2|| / ||dL/dW_(depth-1)||. Above 1: it grows towards the input."""
    return float(grads[1] / grads[-2])


def init_table(seeds: Sequence[int], dataset: str = "auto",
               depths: Sequence[int] = INIT_DEPTHS) -> dict[tuple[str, int, int], np.ndarray]:
    """{(label, depth, seed): per-layer gradient norms} for every MLP of section 2."""
    return {(label, depth, seed): init_gradients(norm, depth, seed, dataset)
            for label, norm in NORMS.items() for depth in depths for seed in seeds}


# --- fetching the runs (cached, else trained) --------------------------------------------------------------------

def depth_runs(profile: Profile, dataset: str = "auto", seed: int = 0,
               progress: bool = True) -> dict[tuple[str, int, str], Run]:
    """Section 1's runs of one seed, {(model, depth, label): run}."""
    return {key: train_planned(one, progress) for key, one in depth_plan(profile, dataset, seed).items()}


def lr_runs(profile: Profile, dataset: str = "auto", seed: int = 0,
            progress: bool = False) -> dict[tuple[str, int, str, float], Run]:
    """Section 3's grid of one seed, {(model, depth, label, lr): run}."""
    return {key: train_planned(one, progress) for key, one in lr_plan(profile, dataset, seed).items()}


# --- the Hessian probe's new parts against direct computations (the chapter's checks) ----------------------------

def _tiny_mlp(seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A float64 MLP 4-5-3 with BatchNorm, its running statistics moved off their initial values by a few
    training-mode forwards, and a batch of 12 points."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    net = net.double().train()
    with torch.no_grad():
        for _ in range(5):
            net(torch.randn(12, 4, dtype=torch.float64) * 2 + 1)
    return net, torch.randn(12, 4, dtype=torch.float64), torch.randint(0, 3, (12,))


def top_k_check(k: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """The `top_k` largest eigenvalues from Lanczos (run to the dimension: exact in exact arithmetic) against the
    full Hessian's by finite differences of gradients, on tiny float64 models."""
    torch.manual_seed(seed)
    x = torch.randn(16, 3, dtype=torch.float64)
    target = x @ torch.randn(3, 3, dtype=torch.float64)
    mlp, xm, ym = _tiny_mlp(seed)
    cases = {"DLN 3x(3x3) Standard": (DLN("none", 3, 3), losses.sum_squared_error, x, target),
             "DLN 3x(3x3) +BN": (DLN("batch", 3, 3), losses.sum_squared_error, x, target),
             "MLP 4-5-3 +BN": (mlp, losses.cross_entropy, xm, ym)}
    rows = []
    for name, (net, loss_fn, xs, ys) in cases.items():
        net = net.double().train()
        n = sum(p.numel() for p in net.parameters())
        full = np.sort(np.linalg.eigvalsh(finite_difference_hessian(net, loss_fn, xs, ys)))[::-1][:k]
        est = np.array(lanczos(net, loss_fn, xs, ys, iters=n, tol=0.0, seed=seed, top_k=k)["top_eigs"])
        rows.append({"model": name, "parameters": n, **{f"lambda_{i + 1} full": v for i, v in enumerate(full)},
                     **{f"lambda_{i + 1} Lanczos": v for i, v in enumerate(est)},
                     "largest relative error": float(np.max(np.abs(est - full)) / np.abs(full[0]))})
    return rows


def frozen_statistics_loss(net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor,
                           flat: torch.Tensor) -> torch.Tensor:
    """The tiny MLP's loss written out by hand with its BatchNorm's running mean and variance as constants, as a
    function of its parameters flattened in `net.parameters()` order: the direct computation of the
    running-statistics loss, with no module put in evaluation mode."""
    sizes = [p.numel() for p in net.parameters()]
    w1, b1, gamma, beta, w2, b2 = (t.view(p.shape) for t, p in zip(torch.split(flat, sizes), net.parameters(),
                                                                      strict=True))
    bn = net[1]
    h = (x @ w1.T + b1 - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * gamma + beta
    return torch.nn.functional.cross_entropy(torch.relu(h) @ w2.T + b2, y)


def running_check(seed: int = 0) -> list[dict[str, Any]]:
    """The running-statistics Hessian probe against the Hessian of `frozen_statistics_loss` (torch.autograd's
    full Hessian of the hand-written loss), and beside the batch-statistics one, on the tiny MLP."""
    net, x, y = _tiny_mlp(seed)
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    direct = np.linalg.eigvalsh(torch.autograd.functional.hessian(
        lambda w: frozen_statistics_loss(net, x, y, w), flat).numpy())
    rows = []
    for statistics in STATISTICS:
        ctx = StepContext(net, x, y, torch.tensor(0.0), losses.cross_entropy, 0.1, 0)
        record = HessianProbe(1, iters=len(flat), tol=0.0, top_k=2, statistics=statistics).measure(ctx)
        rows.append({"statistics": statistics, "top (probe)": record["top_eig"],
                     "second (probe)": record["top_eigs"][1], "bottom (probe)": record["min_eig"],
                     "top (direct, running)": float(direct[-1]), "second (direct, running)": float(direct[-2]),
                     "bottom (direct, running)": float(direct[0])})
    return rows
