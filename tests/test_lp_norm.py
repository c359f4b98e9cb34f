import math

import pytest
import torch

from bnlib.models import DLN, VGG, LpNorm
from bnlib.profiles import resolve
from bnlib.train import RunConfig, train

PS = (1, 2, float("inf"))


def direct(x: torch.Tensor, p: float, eps: float = 1e-5) -> torch.Tensor:
    """Unit by unit with plain loops: mean over the unit's samples, l_p norm of the raw values / m^(1/p)."""
    out = torch.empty_like(x)
    for j in range(x.shape[1]):
        v = x[:, j].reshape(-1)
        m = v.numel()
        scale = v.abs().max() if math.isinf(p) else torch.linalg.vector_norm(v, ord=p) / m ** (1 / p)
        out[:, j] = (x[:, j] - v.mean()) / (scale + eps)
    return out


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("shape", [(16, 5), (6, 4, 3, 3)])
def test_formula_matches_a_direct_computation(p, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1.5  # a non-zero mean: the scale is taken before centring
    norm = LpNorm(shape[1], p).double().train()
    assert torch.allclose(norm(x), direct(x, p), atol=1e-10)


def test_scale_is_taken_before_the_mean_is_removed():
    x = torch.tensor([[1.0], [3.0]])  # mean 2; centred values +-1
    z = LpNorm(1, 1, eps=0.0)(x)
    assert torch.allclose(z, torch.tensor([[-0.5], [0.5]]))  # divided by mean|x| = 2, not mean|x - 2| = 1


def test_affine_parameters_apply_after_normalising():
    norm = LpNorm(2, 2)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, 3.0]))
        norm.bias.copy_(torch.tensor([-1.0, 1.0]))
    x = torch.randn(10, 2)
    assert torch.allclose(norm(x), direct(x, 2) * norm.weight + norm.bias, atol=1e-5)


@pytest.mark.parametrize("p", PS)
def test_running_statistics_serve_evaluation(p):
    torch.manual_seed(1)
    norm = LpNorm(3, p, momentum=0.5)
    batches = [torch.randn(32, 3) * 2 + 1 for _ in range(3)]
    mean, scale = torch.zeros(3), torch.ones(3)
    for x in batches:
        norm(x)
        bmean = x.mean(0)
        bscale = x.abs().amax(0) if math.isinf(p) else x.abs().pow(p).mean(0).pow(1 / p)
        mean, scale = 0.5 * mean + 0.5 * bmean, 0.5 * scale + 0.5 * bscale
    assert torch.allclose(norm.running_mean, mean, atol=1e-6)
    assert torch.allclose(norm.running_scale, scale, atol=1e-6)
    norm.eval()
    x = torch.randn(4, 3)
    assert torch.allclose(norm(x), (x - mean) / (scale + norm.eps), atol=1e-6)
    before = norm.running_mean.clone()
    norm(x)
    assert torch.equal(norm.running_mean, before)  # evaluation does not update them


@pytest.mark.parametrize("bad", [0, 3, -1, 1.5, "l1", float("nan")])
def test_bad_p_is_rejected(bad):
    with pytest.raises(ValueError, match="LpNorm p must be 1, 2 or inf"):
        LpNorm(4, bad)


@pytest.mark.parametrize("p", PS)
def test_a_dead_unit_gives_finite_gradients(p):
    x = torch.randn(8, 3, 4, 4)
    x[:, 1] = 0
    x.requires_grad_(True)
    LpNorm(3, p)(x).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_lp_norms_sit_in_vgg_and_dln(norm):
    vgg, dln = VGG(norm, width=1 / 16, in_channels=1), DLN(norm, depth=4, dim=3)
    assert isinstance(vgg.block(11).norm, LpNorm) and isinstance(dln.block(2).norm, LpNorm)
    assert not isinstance(dln.block(4).norm, LpNorm)  # none after the DLN's last layer
    assert vgg.block(11).norm.p == {"l1": 1, "l2": 2, "linf": math.inf}[norm]


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_lp_models_train(norm, tiny_vgg, tiny_dln):
    h = train(tiny_vgg.replace(norm=norm, steps=16), progress=False)
    assert h["diverged_at"] is None and torch.isfinite(h["step_loss"]).all()
    d = train(tiny_dln.replace(norm=norm, lr=1e-3, steps=40), progress=False)
    assert d["diverged_at"] is None
    assert d["evals"][-1]["train_loss"] < d["evals"][0]["train_loss"]


def test_run_config_accepts_lp_norms():
    assert RunConfig(model="dln", norm="l1").norm == "l1"


# ---- the chapter's summaries and verdict rules (bnlib.experiments.lp, bnlib.claims.lp) ----

def fake_history(means, variances, acc=None):
    """A history with only what the summaries read: activation moments of one layer, step accuracy."""
    import numpy as np

    records = [{"step": t, "layers": {11: {"mean": np.array(m, float), "var": np.array(v, float)}}}
               for t, (m, v) in enumerate(zip(means, variances, strict=True))]
    acc = torch.tensor(acc if acc is not None else [0.5] * 10)
    return {"probes": {"activations": records}, "diverged_at": None, "step_acc": acc, "step_loss": 1 - acc}


def test_distribution_shift_is_scale_free_and_detects_drift():
    from bnlib.experiments import lp

    steady = fake_history([[0.0, 1.0]] * 3, [[1.0, 4.0]] * 3)
    assert lp.distribution_shift(steady) == {"mean_shift": 0.0, "var_shift": 0.0}
    drift = fake_history([[0.0], [1.0], [2.0]], [[1.0], [1.0], [4.0]])
    s = lp.distribution_shift(drift)
    assert s["mean_shift"] == pytest.approx((0 + 1 + 2) / 3)
    assert s["var_shift"] == pytest.approx(math.log(4) / 3)
    scaled = fake_history([[0.0], [10.0], [20.0]], [[100.0], [100.0], [400.0]])
    assert lp.distribution_shift(scaled) == pytest.approx(s)


def test_paper_side_statistics_of_section_3_3():
    """Read off the paper's Figures 12a and 13: l_p trains the VGG like BN; on the DLN l1 ends far below BN,
    but l_inf ends at twice BN's loss (the figure does not bear out "all comparable" there)."""
    from bnlib.claims import lp as c

    by_id = {r.id: r for r in c.dln_claims({}) + c.vgg_claims({})}
    assert by_id["lp-vgg-trains"].paper == pytest.approx(-0.36, abs=0.01)
    assert by_id["lp-dln-l1"].paper == pytest.approx(480.5 / 100.7, rel=0.01)
    assert by_id["lp-dln-trains"].paper_vs_text.startswith("no")
    assert by_id["lp-shift"].paper is None and all(r.ours == [] for r in by_id.values())


def test_runs_reject_unknown_norms():
    from bnlib.experiments import lp

    with pytest.raises(ValueError, match="norms must be among"):
        lp.vgg_runs(resolve("smoke"), norms=("l3",))
