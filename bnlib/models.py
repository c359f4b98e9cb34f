"""The paper's two models, with every normalisation the book compares behind one `norm` switch.

Layers are numbered as the paper numbers them: VGG layer #k is the k-th 3x3 convolution (1..13,
the classifier is #14), DLN layer #k the k-th linear map (1..25). Each numbered layer is a
`Block`: weight layer -> norm -> activation, so "the input distribution of layer #k" is read at
the output of block k's norm (what the next non-linearity sees, noise included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bnlib import checks

NORMS = ("none", "batch", "noisy", "noise_only", "l1", "l2", "linf")
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# VGG's configurations A, B, D, E (Simonyan & Zisserman 2015) named by their weight layers as that paper counts them
# (with three classifier layers; ours has one, so VGG-d has d - 3 convolutions): the later-work chapter's depths
VGG_LAYOUTS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: VGG16_LAYOUT,
    19: (64, 64, "M", 128, 128, "M", *(256,) * 4, "M", *(512,) * 4, "M", *(512,) * 4, "M"),
}


@dataclass(frozen=True)
class NoiseConfig:
    """Algorithm 1's constants (paper defaults): per-step, per-unit mean/scale shifts."""

    n_mu: float = 0.5
    n_sigma: float = 1.25
    r_mu: float = 0.1
    r_sigma: float = 0.1

    def __post_init__(self) -> None:
        checks.check_number("noise n_mu", self.n_mu, 0)  # mu_j ~ U(-n_mu, n_mu)
        checks.check_number("noise n_sigma", self.n_sigma, 1)  # sigma_j ~ U(1, n_sigma)
        checks.check_number("noise r_mu", self.r_mu, 0)
        checks.check_number("noise r_sigma", self.r_sigma, 0)


def check_noise(noise: object) -> NoiseConfig:
    if not isinstance(noise, NoiseConfig):
        raise checks.BadParameter(f"noise must be a bnlib.models.NoiseConfig, got {noise!r} ({type(noise).__name__})")
    return noise


def _unit_view(x: torch.Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a per-unit (channel) vector against (N, C, ...) activations."""
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


def normal_like(a: torch.Tensor) -> torch.Tensor:
    """N(0, 1) draws shaped and laid out like `a`, filled in memory order: torch's normal fill takes a slow path on a
    channels-last tensor (54 ms vs 6.7 ms for 1M values, one CPU thread), which made noisy BN 2x slower per step."""
    order = sorted(range(a.dim()), key=lambda d: (-a.stride(d), d))
    z = torch.randn([a.shape[d] for d in order], dtype=a.dtype, device=a.device)
    return z.permute([order.index(d) for d in range(a.dim())])


def inject_noise(a: torch.Tensor, noise: NoiseConfig) -> torch.Tensor:
    """Algorithm 1: a_ij <- s_ij a_ij + m_ij with unit-level draws mu_j, sigma_j fresh every call."""
    view = _unit_view(a)
    c = a.shape[1]
    mu = (torch.rand(c, device=a.device) * 2 - 1).mul_(noise.n_mu).view(view)
    sigma = (1 + torch.rand(c, device=a.device) * (noise.n_sigma - 1)).view(view)
    # drawn in place and applied as one multiply-add: the random draws are most of the cost, so no extra passes
    m = torch.rand_like(a).mul_(2 * noise.r_mu).add_(mu - noise.r_mu)  # mu_j + U(-r_mu, r_mu)
    s = normal_like(a).mul_(noise.r_sigma).add_(sigma)  # sigma_j + N(0, r_sigma^2)
    return torch.addcmul(m, s, a)


class NoisyBatchNorm(nn.Module):
    """BatchNorm whose normalised output gets Algorithm 1's noise before the affine gamma, beta.

    With `normalize=False` it is the text's control: the same noise on an un-normalised layer.
    Noise is drawn in training mode only; evaluation sees plain (running-statistics) BN.
    """

    def __init__(self, num_features: int, noise: NoiseConfig, normalize: bool = True, spatial: bool = True) -> None:
        super().__init__()
        self.noise = noise
        self.normalize = normalize
        if normalize:
            self.bn = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(num_features, affine=False)
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = self.bn(x)
        if self.training:
            x = inject_noise(x, self.noise)
        if self.normalize:
            x = torch.addcmul(self.bias.view(_unit_view(x)), x, self.weight.view(_unit_view(x)))
        return x


class LpNorm(nn.Module):
    """Section 3.3's l_p normalisation: subtract the batch mean, divide by the batch l_p scale.

    For unit j over its m samples y_ij: ``z = gamma (y - mean(y)) / (s_p + eps) + beta`` with
    ``s_p = (mean_i |y_ij|^p)^(1/p)`` for p = 1, 2 and ``s_inf = max_i |y_ij|``, taken on y before the
    mean is removed (as the paper says). Running averages of mean and s_p serve evaluation.
    """

    def __init__(self, num_features: int, p: float, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        if p not in (1, 2, float("inf")):
            raise ValueError(f"LpNorm p must be 1, 2 or inf, got {p}")
        self.p, self.eps, self.momentum = p, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_scale", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [d for d in range(x.dim()) if d != 1]
        view = _unit_view(x)
        if self.training:
            mean = x.mean(dim=dims)
            if self.p == float("inf"):
                scale = x.abs().amax(dim=dims)
            else:  # one fused reduction (and backward); a unit that is 0 on the whole batch gets scale 0, grads 0
                scale = torch.linalg.vector_norm(x, self.p, dim=dims) / (x.numel() // x.shape[1]) ** (1 / self.p)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_scale.lerp_(scale.detach(), self.momentum)
        else:
            mean, scale = self.running_mean, self.running_scale
        # gamma (x - mean) / (scale + eps) + beta as one per-unit multiply-add over the activations (2.5x faster
        # than four elementwise passes on a 1/8-width VGG layer, forward and backward)
        a = self.weight / (scale + self.eps)
        return torch.addcmul((self.bias - mean * a).view(view), x, a.view(view))


def make_norm(norm: str, num_features: int, spatial: bool, noise: NoiseConfig) -> nn.Module:
    """The module that sits between a weight layer and its activation."""
    if norm == "none":
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(num_features) if spatial else nn.BatchNorm1d(num_features)
    if norm in ("noisy", "noise_only"):
        return NoisyBatchNorm(num_features, noise, normalize=norm == "noisy", spatial=spatial)
    if norm in ("l1", "l2", "linf"):
        return LpNorm(num_features, {"l1": 1, "l2": 2, "linf": float("inf")}[norm])
    raise ValueError(f"unknown norm {norm!r}; allowed: {list(NORMS)}")


class Block(nn.Module):
    """One numbered layer: weight layer -> norm -> activation (-> optional pooling)."""

    def __init__(self, layer: nn.Module, norm: nn.Module, act: nn.Module, pool: nn.Module | None = None) -> None:
        super().__init__()
        self.layer, self.norm, self.act = layer, norm, act
        self.pool = pool if pool is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.norm(self.layer(x))))


class PaperNumbered(nn.Module):
    """Shared helpers: the paper's layer numbers map to `self.blocks[k - 1]`."""

    blocks: nn.ModuleList

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def block(self, k: int) -> Block:
        """Block of layer #k (1-based, as in the paper's figures)."""
        if not isinstance(k, int) or not 1 <= k <= self.num_layers:
            raise ValueError(f"layer number must be an int in 1..{self.num_layers} for this model, got {k!r}")
        return self.blocks[k - 1]

    def layer(self, k: int) -> nn.Module:
        """The weight layer (conv or linear) that the paper calls layer #k."""
        return self.block(k).layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def glorot_init(model: nn.Module) -> None:
    """Glorot/Xavier-uniform weights and zero biases for every conv and linear layer (paper A.1)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VGG(PaperNumbered):
    """CIFAR VGG-16: 13 conv3x3 layers (#1..#13), 5 max-pools, one linear classifier (#14); `depth` 11, 13 or 19
    picks VGG's other configurations (`VGG_LAYOUTS`), with the same stages, pools and classifier."""

    def __init__(self, norm: str = "none", width: float = 1.0, in_channels: int = 3, num_classes: int = 10,
                 noise: NoiseConfig = NoiseConfig(), depth: int = 16) -> None:
        super().__init__()
        checks.check_choice("norm", norm, NORMS)
        checks.check_number("width", width, 0, checks.WIDTH_MAX, low_open=True)
        checks.check_int("in_channels", in_channels, 1)
        checks.check_int("num_classes", num_classes, 2)
        if checks.check_int("depth", depth, 11, 19) not in VGG_LAYOUTS:
            raise checks.BadParameter(f"VGG depth must be one of {list(VGG_LAYOUTS)}, got {depth}")
        check_noise(noise)
        layout = VGG_LAYOUTS[depth]
        blocks, c = [], in_channels
        for i, v in enumerate(layout):
            if v == "M":
                continue
            out = max(1, round(v * width))
            pool = nn.MaxPool2d(2) if i + 1 < len(layout) and layout[i + 1] == "M" else None
            blocks.append(Block(nn.Conv2d(c, out, 3, padding=1), make_norm(norm, out, True, noise), nn.ReLU(), pool))
            c = out
        blocks.append(Block(nn.Sequential(nn.Flatten(), nn.Linear(c, num_classes)), nn.Identity(), nn.Identity()))
        self.blocks = nn.ModuleList(blocks)
        glorot_init(self)

    def layer(self, k: int) -> nn.Module:
        layer = super().layer(k)
        return layer[1] if isinstance(layer, nn.Sequential) else layer


class DLN(PaperNumbered):
    """Deep linear network: `depth` bias-free dim x dim linear maps, no non-linearity.

    A norm (when any) follows every layer but the last, so the output can still match A x.
    """

    def __init__(self, norm: str = "none", depth: int = 25, dim: int = 10, noise: NoiseConfig = NoiseConfig()) -> None:
        super().__init__()
        checks.check_choice("norm", norm, NORMS)
        checks.check_int("depth", depth, 1)
        checks.check_int("dim", dim, 1)
        check_noise(noise)
        self.blocks = nn.ModuleList(
            Block(nn.Linear(dim, dim, bias=False),
                  make_norm(norm, dim, False, noise) if k < depth else nn.Identity(), nn.Identity())
            for k in range(1, depth + 1))
        glorot_init(self)


class MLP(PaperNumbered):
    """A fully connected ReLU network on flattened images (the later-work chapter): `depth` linear layers, the first
    `depth - 1` of width `width`, each followed by the norm and a ReLU, then the classifier (#depth, no norm).

    He (Kaiming) normal weights, not Glorot: for a ReLU network without a norm they are the initialisation at which
    signals neither grow nor vanish with depth (the "critical" one of Yang et al. 2019), so that a difference with
    depth is BatchNorm's, not the initialisation's (with BatchNorm the weights' scale does not matter).
    """

    def __init__(self, norm: str = "none", depth: int = 8, width: int = 128, in_features: int = 1024,
                 num_classes: int = 10, noise: NoiseConfig = NoiseConfig()) -> None:
        super().__init__()
        checks.check_choice("norm", norm, NORMS)
        checks.check_int("depth", depth, 2)
        checks.check_int("width", width, 1)
        checks.check_int("in_features", in_features, 1)
        checks.check_int("num_classes", num_classes, 2)
        check_noise(noise)
        sizes = [in_features, *(width,) * (depth - 1)]
        blocks = [Block(nn.Linear(n_in, width), make_norm(norm, width, False, noise), nn.ReLU())
                  for n_in in sizes[:-1]]
        blocks.append(Block(nn.Linear(width, num_classes), nn.Identity(), nn.Identity()))
        blocks[0].layer = nn.Sequential(nn.Flatten(), blocks[0].layer)
        self.blocks = nn.ModuleList(blocks)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def layer(self, k: int) -> nn.Module:
        layer = super().layer(k)
        return layer[1] if isinstance(layer, nn.Sequential) else layer
