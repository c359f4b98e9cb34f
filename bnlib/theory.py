"""Section 4's statements checked numerically, in exactly the paper's situation.

One BatchNorm layer after a fully connected layer: Y = X W^T (batch of m rows, k units), each
unit j standardised over the batch, z_j = gamma_j y_hat_j + beta_j with gamma, beta held
constant, then a fixed random smooth downstream loss L(Z). L_hat(W) is the loss with BN; "the
standard network's gradient" grad_yj L is the gradient of the same downstream loss at the same
layer output, g = dL/dz_j (the paper's identification). Everything is float64 and autograd.

Why exact identities come out: with sigma the POPULATION std and eps = 0, y_hat_j has mean 0
and ||y_hat_j||^2 = m, so the BN Jacobian dz_j/dy_j = (gamma/sigma) (I - 11^T/m - y_hat y_hat^T/m)
is gamma/sigma times an orthogonal projection P. Hence
  ||grad_yj L_hat||^2 = (gamma^2/sigma^2) (||g||^2 - <1,g>^2/m - <g,y_hat>^2/m)   (equality),
and the printed 1/sqrt(m) form of Theorem 4.1 subtracts MORE than this for every m >= 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

DTYPE = torch.float64
Loss = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Convention:
    """How the batch std is taken: the paper's analysis needs population std and eps = 0."""

    name: str
    unbiased: bool = False  # divide the variance by m - 1 instead of m
    eps: float = 0.0  # added to the variance, as torch's BatchNorm does (1e-5)


PAPER = Convention("population std, eps=0 (the analysis)")
CONVENTIONS = (PAPER, Convention("population std, eps=1e-2", eps=1e-2),
               Convention("unbiased std (m-1), eps=0", unbiased=True))


def batch_norm(y: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, conv: Convention = PAPER
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-column BN of y (m x k) in training mode: returns z, y_hat and the divisor sigma."""
    mu = y.mean(0)
    var = y.var(0, unbiased=conv.unbiased)
    sigma = (var + conv.eps).sqrt()
    y_hat = (y - mu) / sigma
    return gamma * y_hat + beta, y_hat, sigma


@dataclass
class Problem:
    """One random draw of the Section 4 situation."""

    x: torch.Tensor  # m x d inputs
    w: torch.Tensor  # k x d weights
    gamma: torch.Tensor  # k, positive
    beta: torch.Tensor  # k
    loss: Loss  # smooth downstream loss of Z (m x k)

    @property
    def m(self) -> int:
        return self.x.shape[0]


def random_problem(m: int, gen: torch.Generator, d: int = 6, k: int = 4, hidden: int = 8) -> Problem:
    """Random X, W, gamma, beta and a random smooth non-convex loss: a tanh layer, a squared error
    and a quartic term (so its Hessian is neither zero nor constant)."""
    if m < 2:
        raise ValueError(f"batch size m must be >= 2 (a std over one sample is 0), got {m}")

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=DTYPE)

    v1, v2, target, quart = r(k, hidden) / math.sqrt(k), r(hidden) / math.sqrt(hidden), r(m), 0.1 * r(k).abs()
    offset = r(m, k)

    def loss(z: torch.Tensor) -> torch.Tensor:
        out = torch.tanh((z + 0.3 * offset) @ v1) @ v2
        return (out - target).pow(2).sum() + (quart * z.pow(4)).sum() / m

    gamma = 0.5 + 1.5 * torch.rand(k, generator=gen, dtype=DTYPE)
    return Problem(r(m, d), r(k, d) * 3 * torch.rand(k, 1, generator=gen, dtype=DTYPE), gamma, r(k), loss)


def unit_quantities(p: Problem, j: int = 0, conv: Convention = PAPER) -> dict[str, float]:
    """For unit j: both sides of Theorems 4.1 (both forms) and 4.2, from autograd.

    lhs41 = ||grad_yj L_hat||^2; rhs41_sqrt / rhs41_m: the printed form / the 1/m form.
    lhs42 = v^T (d2 L_hat / dy_j2) v with v = grad_yj L_hat; rhs42: the theorem's right side,
    with g = dL/dz_j and H_jj = d2 L / dz_j2 evaluated at z = BN(y).
    """
    y0 = (p.x @ p.w.T).detach()
    m = p.m

    def l_hat(yj: torch.Tensor) -> torch.Tensor:
        y = torch.cat([y0[:, :j], yj[:, None], y0[:, j + 1:]], dim=1)
        return p.loss(batch_norm(y, p.gamma, p.beta, conv)[0])

    yj = y0[:, j].clone().requires_grad_(True)
    (v,) = torch.autograd.grad(l_hat(yj), yj, create_graph=True)
    (hv,) = torch.autograd.grad(v, yj, grad_outputs=v.detach())
    v = v.detach()
    z, y_hat, sigma = batch_norm(y0, p.gamma, p.beta, conv)
    zj = z[:, j].clone().requires_grad_(True)

    def l_std(zj_: torch.Tensor) -> torch.Tensor:
        return p.loss(torch.cat([z[:, :j], zj_[:, None], z[:, j + 1:]], dim=1))

    (g,) = torch.autograd.grad(l_std(zj), zj, create_graph=True)
    (hg,) = torch.autograd.grad(g, zj, grad_outputs=v)  # H_jj v
    g = g.detach()
    gam, sig, yh = p.gamma[j].item(), sigma[j].item(), y_hat[:, j]
    scale = gam ** 2 / sig ** 2
    g2, g1, gy = g.dot(g).item(), g.sum().item() ** 2, g.dot(yh).item() ** 2
    return {
        "m": m, "lhs41": v.dot(v).item(),
        "rhs41_sqrt": scale * (g2 - g1 / m - gy / math.sqrt(m)),
        "rhs41_m": scale * (g2 - g1 / m - gy / m),
        "scale41": scale * g2,  # a size to measure gaps against
        "gy_term41": scale * gy,  # (gamma^2/sigma^2) <g, y_hat>^2: the last term without its factor
        "lhs42": v.dot(hv).item(),
        "rhs42": scale * v.dot(hg).item() - gam / (m * sig ** 2) * g.dot(yh).item() * v.dot(v).item(),
        "scale42": scale * abs(v.dot(hg).item()) + gam / (m * sig ** 2) * abs(g.dot(yh).item()) * v.dot(v).item(),
        "yhat_norm2_over_m": yh.dot(yh).item() / m,
    }


def sample(ms: Sequence[int] = (2, 4, 8, 16, 32, 64, 128), draws: int = 100, seed: int = 0,
           conv: Convention = PAPER) -> dict[str, np.ndarray]:
    """`draws` random problems per batch size m, one row per draw (column arrays)."""
    gen = torch.Generator().manual_seed(seed)
    rows = [unit_quantities(random_problem(m, gen), 0, conv) for m in ms for _ in range(draws)]
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def holds(lhs: np.ndarray, rhs: np.ndarray, scale: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """lhs <= rhs up to float64 round-off relative to the size of the terms."""
    return lhs <= rhs + rtol * np.abs(scale) + 1e-300


def inequality_summary(lhs: np.ndarray, rhs: np.ndarray, scale: np.ndarray, rtol: float = 1e-9
                       ) -> dict[str, float]:
    """Fraction of draws where lhs <= rhs holds, whether it is an equality, and the worst slack.

    slack = (rhs - lhs) / scale: negative means violated; `worst_slack` is the minimum.
    """
    scale = np.abs(scale)
    slack = np.divide(rhs - lhs, scale, out=np.zeros_like(lhs), where=scale > 0)  # 0/0: both sides vanish (m=2)
    ok = holds(lhs, rhs, scale, rtol)
    return {"frac_holds": float(ok.mean()), "n": int(len(lhs)), "worst_slack": float(slack.min()),
            "max_abs_rel_gap": float(np.abs(slack).max()), "equality": bool(np.abs(slack).max() < rtol)}


def theorem41(data: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Theorem 4.1 as printed (1/sqrt(m)) and with 1/m, on the draws in `data`."""
    return {"printed_1_over_sqrt_m": inequality_summary(data["lhs41"], data["rhs41_sqrt"], data["scale41"]),
            "corrected_1_over_m": inequality_summary(data["lhs41"], data["rhs41_m"], data["scale41"])}


def theorem41_by_m(data: dict[str, np.ndarray]) -> dict[int, dict[str, float]]:
    """The printed form's fraction of draws holding, per batch size m."""
    out = {}
    for m in np.unique(data["m"]):
        sel = data["m"] == m
        out[int(m)] = {
            "printed": float(holds(data["lhs41"][sel], data["rhs41_sqrt"][sel], data["scale41"][sel]).mean()),
            "corrected": float(holds(data["lhs41"][sel], data["rhs41_m"][sel], data["scale41"][sel]).mean())}
    return out


def theorem42(data: dict[str, np.ndarray]) -> dict[str, float]:
    """Theorem 4.2 on the draws with m >= 3: at m = 2 the projection P is zero, so the gradient
    and both sides vanish identically and only round-off (1e-30) is left to compare."""
    sel = data["m"] >= 3
    return inequality_summary(data["lhs42"][sel], data["rhs42"][sel], data["scale42"][sel])


def observation43(draws: int = 200, seed: int = 1) -> dict[str, float]:
    """gamma = sigma_j, beta = mu_j makes BN the identity on y: same activations, same loss."""
    gen = torch.Generator().manual_seed(seed)
    worst_act, worst_loss = 0.0, 0.0
    for _ in range(draws):
        p = random_problem(int(torch.randint(2, 129, (1,), generator=gen)), gen)
        y = p.x @ p.w.T
        z, _, _ = batch_norm(y, y.std(0, unbiased=False), y.mean(0))
        worst_act = max(worst_act, ((z - y).abs().max() / y.abs().max()).item())
        worst_loss = max(worst_loss, (abs(p.loss(z) - p.loss(y)) / abs(p.loss(y))).item())
    return {"n": draws, "max_rel_activation_diff": worst_act, "max_rel_loss_diff": worst_loss,
            "holds": bool(worst_act < 1e-12 and worst_loss < 1e-12)}


def lemma45(draws: int = 500, seed: int = 2, k: int = 4, d: int = 6, m: int = 32) -> dict[str, object]:
    """Lemma 4.5: if <W0, W*> > 0, some BN optimum W_hat* has
    ||W0 - W_hat*||^2 <= ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2.

    W* is the least-squares optimum of a linear regression Y = X W^T; the BN network (gamma, beta
    frozen at sigma(W*), mu(W*), Observation 4.3) attains the same loss at every c W*, c > 0
    (BN is scale invariant), and also at every per-unit rescaling diag(c) W*. We measure the
    distance from W0 to the nearest point of those sets and compare with the bound.
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    worst_invariance = 0.0
    for _ in range(draws):
        x = torch.randn(m, d, generator=gen, dtype=DTYPE)
        target = x @ torch.randn(d, k, generator=gen, dtype=DTYPE) + 0.1 * torch.randn(m, k, generator=gen, dtype=DTYPE)
        w_star = torch.linalg.lstsq(x, target).solution.T  # k x d
        w0 = torch.randn(k, d, generator=gen, dtype=DTYPE)
        y_star = x @ w_star.T
        gamma, beta = y_star.std(0, unbiased=False), y_star.mean(0)
        c = 0.1 + 10 * torch.rand(k, 1, generator=gen, dtype=DTYPE)
        loss_star = (y_star - target).pow(2).sum()
        loss_bn = (batch_norm(x @ (c * w_star).T, gamma, beta)[0] - target).pow(2).sum()
        worst_invariance = max(worst_invariance, (abs(loss_bn - loss_star) / loss_star).item())
        inner, n2 = (w0 * w_star).sum().item(), w_star.pow(2).sum().item()
        bound = (w0 - w_star).pow(2).sum().item() - (n2 - inner) ** 2 / n2
        ray = (w0 - max(inner / n2, 0.0) * w_star).pow(2).sum().item()  # nearest c W*, c >= 0
        row_c = ((w0 * w_star).sum(1) / w_star.pow(2).sum(1)).clamp_min(0)[:, None]
        per_unit = (w0 - row_c * w_star).pow(2).sum().item()  # nearest diag(c) W*
        rows.append((inner, bound, ray, per_unit, (w0 - w_star).pow(2).sum().item()))
    inner, bound, ray, per_unit, dist = (np.array(col) for col in zip(*rows, strict=True))
    pos = inner > 0
    scale = np.abs(dist)
    return {
        "n": draws, "n_positive": int(pos.sum()), "max_rel_loss_change_under_rescaling": worst_invariance,
        "ray": inequality_summary(ray[pos], bound[pos], scale[pos]),
        "per_unit": inequality_summary(per_unit[pos], bound[pos], scale[pos]),
        "negative_inner_ray_holds": float(holds(ray[~pos], bound[~pos], scale[~pos]).mean()) if (~pos).any() else
        float("nan"),
        "mean_gain_ray": float(((dist - ray) / dist)[pos].mean()),
        "mean_gain_per_unit": float(((dist - per_unit) / dist)[pos].mean()),
        "arrays": {"inner": inner, "bound": bound, "ray": ray, "per_unit": per_unit, "dist": dist},
    }


def run_all(draws: int = 100, seed: int = 0, ms: Sequence[int] = (2, 4, 8, 16, 32, 64, 128)) -> dict[str, object]:
    """Every check, with per-draw arrays for the plots and a summary per statement."""
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an int >= 1, got {draws!r}")
    data = {conv.name: sample(ms, draws, seed, conv) for conv in CONVENTIONS}
    paper = data[PAPER.name]
    return {
        "data": data,
        "thm41": theorem41(paper), "thm41_by_m": theorem41_by_m(paper),
        "thm41_conventions": {name: theorem41(d) for name, d in data.items()},
        "thm42": theorem42(paper),
        "thm42_conventions": {name: theorem42(d) for name, d in data.items()},
        "obs43": observation43(seed=seed + 1), "lemma45": lemma45(seed=seed + 2),
    }
