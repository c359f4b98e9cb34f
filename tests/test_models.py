import pytest
import torch

from bnlib.models import DLN, NORMS, VGG, NoiseConfig, NoisyBatchNorm


@pytest.mark.parametrize("norm", NORMS)
def test_vgg_shapes_and_paper_numbering(norm):
    model = VGG(norm, width=1 / 16, in_channels=1)
    assert model(torch.randn(4, 1, 32, 32)).shape == (4, 10)
    assert model.num_layers == 14  # 13 convs + classifier
    assert all(isinstance(model.layer(k), torch.nn.Conv2d) for k in range(1, 14))
    assert isinstance(model.layer(14), torch.nn.Linear)


@pytest.mark.parametrize("norm", NORMS)
def test_dln_shapes(norm):
    model = DLN(norm)
    assert model(torch.randn(16, 10)).shape == (16, 10)
    assert model.num_layers == 25
    assert all(model.layer(k).weight.shape == (10, 10) for k in range(1, 26))


def test_batchnorm_sits_after_the_conv_and_before_the_relu():
    block = VGG("batch", width=1 / 16).block(3)
    assert isinstance(block.layer, torch.nn.Conv2d)
    assert isinstance(block.norm, torch.nn.BatchNorm2d)
    assert isinstance(block.act, torch.nn.ReLU)


def test_glorot_init():
    torch.manual_seed(0)
    conv = VGG("none", width=1 / 4).layer(5)
    fan_in = conv.in_channels * 9
    fan_out = conv.out_channels * 9
    bound = (6 / (fan_in + fan_out)) ** 0.5
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.9 * bound
    assert torch.all(conv.bias == 0)


def test_layer_number_outside_the_model_is_a_clear_error():
    with pytest.raises(ValueError, match=r"layer number must be an int in 1\.\.14"):
        VGG("none", width=1 / 16).layer(15)
    with pytest.raises(ValueError, match=r"1\.\.25"):
        DLN().block(0)


def test_unknown_norm_and_bad_noise_are_clear_errors():
    with pytest.raises(ValueError, match="unknown norm 'group'.*allowed"):
        VGG("group")
    with pytest.raises(ValueError, match="n_sigma must be a finite number >= 1"):
        NoiseConfig(n_sigma=0.5)
    with pytest.raises(ValueError, match="n_mu must be a finite number >= 0"):
        NoiseConfig(n_mu=-1)


def _noise_moments(noise: NoiseConfig, trials: int = 400):
    """Per-step unit-level shift and scale, recovered from a constant input of ones after BN-free noise."""
    layer = NoisyBatchNorm(1, noise, normalize=False, spatial=False).train()
    shifts, scales = [], []
    for _ in range(trials):
        a0 = layer(torch.zeros(2000, 1))  # = m_ij  -> mean mu_j
        a1 = layer(torch.ones(2000, 1))  # = s_ij + m_ij (fresh draw: its mean is sigma_j' + mu_j')
        shifts.append(a0.mean().item())
        scales.append(a1.std().item())
        del a1
    return torch.tensor(shifts), torch.tensor(scales)


def test_algorithm1_noise_statistics():
    torch.manual_seed(0)
    noise = NoiseConfig()
    shifts, spread = _noise_moments(noise)
    # mu_j ~ U(-0.5, 0.5): per-step mean shift stays in range, averages ~0 and has U's variance 1/12
    assert shifts.abs().max() <= noise.n_mu + 0.02
    assert abs(shifts.mean()) < 0.05
    assert abs(shifts.var() - (2 * noise.n_mu) ** 2 / 12) < 0.02
    # within a step: s_ij ~ N(sigma_j, 0.1), m_ij ~ U(mu_j +- 0.1): std of s + m = sqrt(0.01 + 0.04/12)
    assert abs(spread.mean() - (noise.r_sigma**2 + (2 * noise.r_mu) ** 2 / 12) ** 0.5) < 0.01


def test_noise_scale_is_in_range_and_fresh_each_step():
    torch.manual_seed(1)
    layer = NoisyBatchNorm(64, NoiseConfig(r_mu=0, r_sigma=0), normalize=False, spatial=False).train()
    ones = torch.ones(8, 64)
    first, second = layer(ones), layer(ones)  # = sigma_j + mu_j
    sigma_plus_mu = first[0]
    assert torch.all(sigma_plus_mu >= 1 - 0.5) and torch.all(sigma_plus_mu <= 1.25 + 0.5)
    assert not torch.equal(first, second)
    assert torch.equal(first[0], first[7])  # r_mu = r_sigma = 0: one draw per unit


def test_noisy_bn_is_plain_bn_in_eval_mode():
    torch.manual_seed(0)
    noisy = NoisyBatchNorm(3, NoiseConfig(), spatial=True)
    x = torch.randn(8, 3, 4, 4)
    noisy.train()(x)
    noisy.eval()
    assert torch.equal(noisy(x), noisy(x))
    plain = (x - noisy.bn.running_mean.view(1, 3, 1, 1)) / (noisy.bn.running_var.view(1, 3, 1, 1) + 1e-5).sqrt()
    assert torch.allclose(noisy(x), plain, atol=1e-6)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: VGG("batch", width=float("inf")), r"width must be a finite number in \(0, 64\], got inf"),
    (lambda: VGG("batch", width=-1), "width must be a finite number"),
    (lambda: VGG("batch", in_channels=0), "in_channels must be an int >= 1"),
    (lambda: VGG("batch", noise={"n_mu": 1}), "noise must be a bnlib.models.NoiseConfig"),
    (lambda: DLN("none", depth=2.0), r"depth must be an int >= 1, got 2.0 \(float\)"),
    (lambda: DLN("none", dim=True), r"dim must be an int >= 1, got True \(bool\)"),
    (lambda: NoiseConfig(n_mu=float("nan")), "noise n_mu must be a finite number >= 0, got nan"),
    (lambda: NoiseConfig(r_mu="0.1"), r"noise r_mu must be a finite number >= 0, got '0.1' \(str\)"),
])
def test_constructors_check_their_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_normal_draws_follow_the_layout_without_changing_a_contiguous_draw():
    """Algorithm 1's N(0, 1) draws are filled in memory order (torch's normal fill is slow on channels-last):
    on a contiguous tensor they are exactly randn_like's; on a channels-last one they have its strides and are
    standard normal."""
    from bnlib.models import normal_like

    a = torch.randn(4, 3, 5, 6)
    torch.manual_seed(0)
    drawn = normal_like(a)
    torch.manual_seed(0)
    assert torch.equal(drawn, torch.randn_like(a)) and drawn.is_contiguous()
    cl = torch.randn(64, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    z = normal_like(cl)
    assert z.shape == cl.shape and z.stride() == cl.stride()
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
