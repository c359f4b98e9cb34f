"""The fast forms the runs use (bnlib.models) agree with the paper's formulas (bnlib.formulas) on random inputs,
and the comparison tells a plausible misreading of the paper apart."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlib import formulas
from bnlib.models import LpNorm, NoiseConfig, NoisyBatchNorm, inject_noise

TOL = {"rtol": 1e-5, "atol": 1e-5}  # fp32, values of order 1: a few ulps of difference in the order of operations


def _batch(seed: int = 0, shape: tuple[int, ...] = (8, 3, 4, 4)) -> torch.Tensor:
    torch.manual_seed(seed)
    return 2 * torch.randn(shape) + 0.7


def _affine(c: int) -> tuple[torch.Tensor, torch.Tensor]:
    return 1 + 0.5 * torch.randn(c), 0.3 * torch.randn(c)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, **TOL)


@pytest.mark.parametrize("shape", [(8, 3, 4, 4), (16, 5)], ids=["conv", "linear"])
def test_inject_noise_is_algorithm_1_on_the_same_draws(shape):
    a, noise = _batch(1, shape), NoiseConfig()
    torch.manual_seed(7)
    fast = inject_noise(a, noise)
    torch.manual_seed(7)
    m, s = formulas.algorithm1_draws(a, noise)
    assert _close(fast, formulas.algorithm1(a, m, s))
    assert not _close(fast, formulas.algorithm1(a, s, m)), "the comparison must tell scale and shift apart"


def _noisy_bn_layer(c: int, spatial: bool) -> tuple[NoisyBatchNorm, torch.Tensor, torch.Tensor]:
    layer = NoisyBatchNorm(c, NoiseConfig(), spatial=spatial).train()
    gamma, beta = _affine(c)
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
    return layer, gamma, beta


@pytest.mark.parametrize("shape", [(8, 3, 4, 4), (16, 5)], ids=["conv", "linear"])
def test_noisy_batchnorm_is_the_formula_and_not_its_misreadings(shape):
    y = _batch(2, shape)
    layer, gamma, beta = _noisy_bn_layer(shape[1], len(shape) == 4)
    torch.manual_seed(3)
    fast = layer(y)
    torch.manual_seed(3)
    m, s = formulas.algorithm1_draws(y, NoiseConfig())
    assert _close(fast, formulas.noisy_batchnorm(y, gamma, beta, m, s))

    units = formulas.by_unit(y)
    unbiased = (units - units.mean(1, keepdim=True)) / torch.sqrt(units.var(1, keepdim=True, unbiased=True) + 1e-5)
    unit_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
    wrong_var = gamma.view(unit_shape) * formulas.algorithm1(formulas.from_units(unbiased, y), m, s) \
        + beta.view(unit_shape)
    after_gamma = formulas.algorithm1(formulas.batchnorm(y, gamma, beta), m, s)  # noise after the affine map
    assert not _close(fast, wrong_var), "the unbiased variance must be told apart"
    assert not _close(fast, after_gamma), "noise after gamma must be told apart"


def test_batchnorm_formula_is_torchs_batchnorm():
    y = _batch(4)
    gamma, beta = _affine(3)
    bn = nn.BatchNorm2d(3).train()
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    assert _close(bn(y), formulas.batchnorm(y, gamma, beta))


@pytest.mark.parametrize("p", [1, 2, float("inf")], ids=["l1", "l2", "linf"])
@pytest.mark.parametrize("shape", [(8, 3, 4, 4), (16, 5)], ids=["conv", "linear"])
def test_lp_norm_is_the_formula_with_the_scale_taken_before_centring(p, shape):
    y = _batch(5, shape)
    gamma, beta = _affine(shape[1])
    layer = LpNorm(shape[1], p).train()
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
    fast = layer(y)
    assert _close(fast, formulas.lp_norm(y, p, gamma, beta))

    units = formulas.by_unit(y)
    centred = units - units.mean(1, keepdim=True)
    if p == float("inf"):
        s_after = centred.abs().amax(1, keepdim=True)
    else:
        s_after = (centred.abs() ** p).mean(1, keepdim=True) ** (1 / p)
    misread = formulas.from_units(gamma[:, None] * centred / (s_after + 1e-5) + beta[:, None], y)
    assert not _close(fast, misread), "a scale taken after centring must be told apart"
