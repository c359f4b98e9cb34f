"""The activation-distribution probe (shapes, counts, moments vs a direct computation, no effect on the
run) and Algorithm 1's noise statistics in NoisyBatchNorm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnlib.models import VGG, NoiseConfig, NoisyBatchNorm, inject_noise
from bnlib.probes import activations as act
from bnlib.probes.base import StepContext
from bnlib.train import RunConfig, train

TINY = RunConfig(model="vgg", norm="batch", lr=0.05, steps=6, batch_size=16, width=1 / 16, dataset="synthetic",
                 n_train=64, n_test=32, eval_every=3)


def test_record_shapes_and_counts():
    probe = act.ActivationProbe(every=2, layers=[2, 13], units=3, bins=10)
    history = train(TINY, [probe], progress=False)
    steps, edges, counts = act.histograms(history, 2)
    assert steps.tolist() == [0, 2, 4]
    assert edges.shape == (3, 3, 11) and counts.shape == (3, 3, 10)
    assert (counts.sum(axis=-1) == 16 * 32 * 32).all()  # batch x H x W at layer #2 (before the first pool)
    assert (np.diff(edges, axis=-1) > 0).all()
    _, _, counts13 = act.histograms(history, 13)
    assert (counts13.sum(axis=-1) == 16 * 2 * 2).all()  # four pools: 32 -> 2
    steps_m, mean, var = act.moments(history, 13)
    assert steps_m.tolist() == [0, 2, 4] and mean.shape == var.shape == (3, 3)
    drift = act.moment_drift(history, 2)
    assert drift["abs_dmean"].shape == (2, 3) and drift["var_shift"].shape == (3, 3)
    assert np.allclose(drift["mean_shift"][0], 0) and (drift["abs_dvar"] >= 0).all()
    assert len(set(act.units(history, 2).tolist())) == 3


def test_dln_units_are_over_the_batch():
    config = RunConfig(model="dln", norm="batch", lr=1e-4, steps=3, dln_points=50, dln_depth=4, dln_dim=6,
                       eval_every=3)
    history = train(config, [act.ActivationProbe(every=1, layers=[1, 3], units=2, bins=5)], progress=False)
    _, edges, counts = act.histograms(history, 3)
    assert counts.shape == (3, 2, 5) and (counts.sum(axis=-1) == 50).all()
    _, mean, _ = act.moments(history, 1)
    assert np.allclose(mean, 0, atol=1e-6)  # BN output with gamma=1, beta=0 at init has batch mean 0


def test_moments_and_histograms_match_a_direct_computation():
    torch.manual_seed(0)
    model = VGG("batch", width=1 / 16, in_channels=1).eval()
    x = torch.randn(8, 1, 32, 32)
    probe = act.ActivationProbe(every=1, layers=[3, 11], units=2, bins=7, seed=5)
    probe.before_forward(model, 0)
    model(x)
    record = probe.measure(StepContext(model, x, x, torch.tensor(0.0), None, 0.1, 0))
    assert not model.block(3).norm._forward_hooks  # hooks removed after the step
    h, seen = x, {}
    with torch.no_grad():
        for k in range(1, 14):
            block = model.block(k)
            z = block.norm(block.layer(h))
            seen[k] = z
            h = block.pool(block.act(z))
    for k in (3, 11):
        rec = record["layers"][k]
        assert rec["units"].tolist() == act.unit_choice(seen[k].shape[1], 2, 5, k)
        for i, u in enumerate(rec["units"]):
            values = seen[k][:, u].double().flatten().numpy()
            assert rec["mean"][i] == pytest.approx(values.mean(), abs=1e-9)
            assert rec["var"][i] == pytest.approx(values.var(), rel=1e-9)
            direct, _ = np.histogram(values, bins=7, range=(values.min(), values.max()))
            assert np.abs(rec["counts"][i] - direct).sum() <= 2  # at most a boundary value binned differently


def test_probe_does_not_change_the_run(tmp_path):
    """Noisy BN draws from the global RNG every step: any RNG use by the probe would show."""
    config = TINY.replace(norm="noisy")
    probe = act.ActivationProbe(every=1, layers=list(range(1, 14)))
    plain = train(config, [], progress=False)
    probed = train(config, [probe], progress=False)
    assert torch.equal(plain["step_loss"], probed["step_loss"])
    assert plain["evals"] == probed["evals"]
    # final parameters and BN buffers after all `steps` updates: a one-step-longer run stopped there
    # leaves them in its checkpoint (its first `steps` steps are those of the shorter run)
    states, longer = [], config.replace(steps=config.steps + 1)
    for probes, name in (([], "plain"), ([act.ActivationProbe(every=1, layers=[2, 9, 13])], "probed")):
        train(longer, probes, progress=False, checkpoint=tmp_path / f"{name}.pt", stop_after=config.steps)
        states.append(torch.load(tmp_path / f"{name}.pt", weights_only=False)["model"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="layers"):
        act.ActivationProbe(every=1, layers=[])
    with pytest.raises(ValueError, match="units"):
        act.ActivationProbe(every=1, layers=[1], units=0)
    with pytest.raises(ValueError, match="bins"):
        act.ActivationProbe(every=1, layers=[1], bins=1)
    history = train(TINY.replace(steps=2), [act.ActivationProbe(every=1, layers=[2])], progress=False)
    with pytest.raises(ValueError, match="layer must be one of"):
        act.moments(history, 5)
    with pytest.raises(ValueError, match="no 'activations' probe"):
        act.histograms(train(TINY.replace(steps=2), [], progress=False), 2)


def test_diverged_values_do_not_break_the_probe():
    rec = act.summarize(torch.tensor([[1.0, float("inf"), 2.0], [3.0, 3.0, 3.0]]), bins=4)
    assert rec["counts"][0].sum() == 0 and rec["counts"][1].sum() == 3
    assert rec["lo"][1] < 3 < rec["hi"][1]


# ---- Algorithm 1 (NoisyBatchNorm) ----

def test_noise_unit_shift_and_scale_ranges():
    torch.manual_seed(1)
    noise = NoiseConfig(n_mu=0.5, n_sigma=1.25, r_mu=0.0, r_sigma=0.0)
    c = 512
    shift = inject_noise(torch.zeros(4, c, 3, 3), noise)  # = mu_j everywhere in channel j
    mu = shift[0, :, 0, 0]
    assert torch.equal(shift, mu.view(1, c, 1, 1).expand_as(shift))
    assert mu.abs().max() <= 0.5 and mu.abs().max() > 0.45 and abs(mu.mean()) < 0.05
    scale = inject_noise(torch.ones(4, c, 3, 3), NoiseConfig(n_mu=0.0, n_sigma=1.25, r_mu=0.0, r_sigma=0.0))
    sigma = scale[0, :, 0, 0]
    assert sigma.min() >= 1 and sigma.max() <= 1.25 and sigma.max() > 1.22
    assert sigma.mean() == pytest.approx(1.125, abs=0.01)  # E U(1, n_sigma)


def test_noisy_bn_output_moments_and_freshness():
    torch.manual_seed(2)
    noise = NoiseConfig()  # paper constants
    layer = NoisyBatchNorm(256, noise).train()
    x = torch.randn(64, 256, 8, 8) * 3 + 1
    with torch.no_grad():
        out1, out2 = layer(x), layer(x)
    means, stds = out1.mean(dim=(0, 2, 3)), out1.std(dim=(0, 2, 3))
    assert means.abs().max() <= 0.5 + 0.02  # batch-normalised input: the unit mean is mu_j ~ U(-n_mu, n_mu)
    assert stds.min() >= 0.98 and stds.max() <= (1.25**2 + 0.1**2) ** 0.5 + 0.02  # about sigma_j in [1, n_sigma]
    assert stds.mean() == pytest.approx(1.13, abs=0.02)
    assert not torch.allclose(out1, out2)  # fresh draws every step
    assert (out1.mean(dim=(0, 2, 3)) - out2.mean(dim=(0, 2, 3))).abs().mean() > 0.1


def test_no_noise_in_eval_mode():
    torch.manual_seed(3)
    layer = NoisyBatchNorm(8, NoiseConfig()).train()
    x = torch.randn(16, 8, 4, 4)
    with torch.no_grad():
        for _ in range(5):
            layer(torch.randn(16, 8, 4, 4) * 2 + 1)
        layer.eval()
        bn = layer.bn
        expected = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
        assert torch.allclose(layer(x), expected, atol=1e-6)
        assert torch.equal(layer(x), layer(x))
        control = NoisyBatchNorm(8, NoiseConfig(), normalize=False).eval()
        assert torch.equal(control(x), x)
        assert not torch.equal(control.train()(x), x)
