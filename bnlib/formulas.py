"""The paper's normalisations written as its formulas, for reading beside the fast forms the runs use.

`bnlib.models` computes the same things in fewer passes over memory (fused multiply-adds, draws made in place),
which reads less like the paper. The functions here are the paper's lines, one to one, on the same tensors;
`tests/test_formulas.py` pins each fast form to its formula on random inputs (and checks that a plausible
misreading, such as the unbiased variance or the noise added after gamma, is told apart). The runs never call
them: they sit outside the modules the run cache fingerprints.

Activations are (N, C, ...) tensors; unit j is channel j, whose m values are pooled over the batch and every
spatial position, as BatchNorm does.
"""

from __future__ import annotations

import torch

from bnlib.models import NoiseConfig, _unit_view


def by_unit(y: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (C, m): row j holds unit j's m values y_1j, ..., y_mj."""
    return y.transpose(0, 1).reshape(y.shape[1], -1)


def from_units(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of `by_unit`: (C, m) back to the (N, C, ...) shape of `like`."""
    n, c, *rest = like.shape
    return z.reshape(c, n, *rest).transpose(0, 1)


def batchnorm(y: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """BatchNorm in training mode: ``z = gamma (y - mu) / sqrt(sigma^2 + eps) + beta``, with the batch's mean mu
    and its biased variance ``sigma^2 = (1/m) sum_i (y_ij - mu_j)^2``."""
    units = by_unit(y)
    mu = units.mean(dim=1, keepdim=True)
    var = ((units - mu) ** 2).mean(dim=1, keepdim=True)
    y_hat = (units - mu) / torch.sqrt(var + eps)
    return from_units(gamma[:, None] * y_hat + beta[:, None], y)


def algorithm1_draws(a: torch.Tensor, noise: NoiseConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1's random draws for activations `a`: per unit, ``mu_j ~ U(-n_mu, n_mu)`` and
    ``sigma_j ~ U(1, n_sigma)``; per entry, ``m_ij ~ U(mu_j - r_mu, mu_j + r_mu)`` and ``s_ij ~ N(sigma_j, r_sigma^2)``.
    Returns (m, s), shaped like `a`; drawn in the order `models.inject_noise` draws them."""
    mu = torch.empty(a.shape[1], device=a.device).uniform_(-noise.n_mu, noise.n_mu).view(_unit_view(a))
    sigma = torch.empty(a.shape[1], device=a.device).uniform_(1, noise.n_sigma).view(_unit_view(a))
    m = mu + torch.empty_like(a).uniform_(-noise.r_mu, noise.r_mu)
    s = sigma + noise.r_sigma * torch.randn_like(a)
    return m, s


def algorithm1(a: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Algorithm 1's injection: ``a_ij <- s_ij a_ij + m_ij``."""
    return s * a + m


def noisy_batchnorm(y: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, m: torch.Tensor, s: torch.Tensor,
                    eps: float = 1e-5) -> torch.Tensor:
    """Noisy BN (Section 2.1): the normalised y_hat gets Algorithm 1's noise, then the affine map:
    ``z = gamma (s * y_hat + m) + beta``."""
    y_hat = batchnorm(y, torch.ones_like(gamma), torch.zeros_like(beta), eps)
    return gamma.view(_unit_view(y)) * algorithm1(y_hat, m, s) + beta.view(_unit_view(y))


def lp_norm(y: torch.Tensor, p: float, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Section 3.3's l_p normalisation in training mode: ``z = gamma (y - mu) / (s_p + eps) + beta``, with
    ``s_p = ((1/m) sum_i |y_ij|^p)^(1/p)`` for p = 1, 2 and ``s_inf = max_i |y_ij|``, taken on y before the mean
    is removed."""
    units = by_unit(y)
    mu = units.mean(dim=1, keepdim=True)
    if p == float("inf"):
        s_p = units.abs().amax(dim=1, keepdim=True)
    else:
        s_p = (units.abs() ** p).mean(dim=1, keepdim=True) ** (1 / p)
    return from_units(gamma[:, None] * (units - mu) / (s_p + eps) + beta[:, None], y)
