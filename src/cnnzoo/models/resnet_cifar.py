"""The CIFAR networks of the residual papers, for 32x32 images:

- ResNet-20/32/44/56/110 (He et al. 2015, section 4.2) and their "plain" twins without shortcuts,
- ResNet-110 with stochastic depth (Huang et al. 2016),
- Wide ResNet-28-10 (Zagoruyko & Komodakis 2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .layers import GlobalPool, check_count, check_rate, he_init_
from .resnet import drop_path_or_identity, linear_drop_rates


class PadShortcut(nn.Module):
    """Option A shortcut of He et al.: identity, subsampled by ``stride`` and zero-padded with
    ``out_chs - in_chs`` extra channels, so the shortcuts add no parameters.

    ``pool="avg"`` averages each ``stride x stride`` window instead of keeping its top-left
    value, as Huang et al.'s stochastic-depth code does in its transitional blocks.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, pool: str = "subsample") -> None:
        super().__init__()
        if out_chs < in_chs:
            raise ModelArgumentError(
                f"option A shortcut cannot reduce channels, got {in_chs}->{out_chs}"
            )
        if pool not in ("subsample", "avg"):
            raise ModelArgumentError(f"shortcut pool must be 'subsample' or 'avg', got {pool!r}")
        self.extra, self.stride, self.pool = out_chs - in_chs, stride, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            if self.pool == "avg":
                x = F.avg_pool2d(x, self.stride)
            else:
                x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # zeros appended after the input channels

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pool={self.pool}, zero_channels={self.extra}"


class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; with ``shortcut=False`` the plain block (no addition)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int,
        shortcut: bool = True,
        drop_path: float = 0.0,
        shortcut_pool: str = "subsample",
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.shortcut: nn.Module | None = None
        if shortcut:
            same = stride == 1 and in_chs == out_chs
            self.shortcut = (
                nn.Identity() if same else PadShortcut(in_chs, out_chs, stride, shortcut_pool)
            )
        self.drop_path = drop_path_or_identity(drop_path)

    def zero_init_last(self) -> None:
        """Zero the last BN's scale: a residual block becomes the identity, a plain one zero."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is None:  # plain net
            return self.relu(out)
        return self.relu(self.drop_path(out) + self.shortcut(x))


class CifarResNet(ZooModel):
    """The 6n+2-layer CIFAR network of He et al. 2015, section 4.2.

    A 3x3 convolution with 16 filters, then three stages of n blocks (2n layers each) on
    32x32x16, 16x16x32 and 8x8x64 maps (the first convolution of a stage has stride 2), global
    average pooling and a 10-way fully connected layer. Shortcuts are option A: identity, with
    zero channels appended where the width doubles, so a ResNet has exactly as many parameters as
    its plain twin (``shortcut=False``), e.g. 269,722 for depth 20 (the paper's 0.27M).

    Args:
        depth: 6n+2 weighted layers (20, 32, 44, 56, 110, ...).
        num_classes: classifier outputs; 0 leaves the head returning pooled features.
        in_chans: input image channels.
        shortcut: False builds the plain net (same layers, no addition).
        drop_path_rate: stochastic depth (Huang et al. 2016): block l of L drops its residual
            branch with probability ``drop_path_rate * l / L`` while training. A dropped branch
            leaves ``relu(shortcut) = shortcut``, since the shortcut carries non-negative values.
            Drops are drawn per sample (as timm does), not once per mini-batch as in the paper;
            each sample sees the same probabilities.
        shortcut_pool: how option A shortcuts halve the map: ``"subsample"`` (He et al.) or
            ``"avg"`` (2x2 average pooling, Huang et al.'s code).
        zero_init_last: start every block with its last BN's scale at zero.
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: bool = True,
        drop_path_rate: float = 0.0,
        shortcut_pool: str = "subsample",
        zero_init_last: bool = False,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        if depth < 8 or (depth - 2) % 6:
            raise ModelArgumentError(
                f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}"
            )
        if not shortcut and drop_path_rate:
            raise ModelArgumentError(
                f"a plain net has no residual branch to drop; drop_path_rate must be 0, got "
                f"{drop_path_rate} (use the resnet{depth} twin for stochastic depth)"
            )
        n = (depth - 2) // 6
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 64
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        rates = iter(linear_drop_rates(drop_path_rate, 3 * n))
        stages, in_chs = [], 16
        for out_chs, stride in ((16, 1), (32, 2), (64, 2)):  # filters, stride of the first block
            blocks = []
            for i in range(n):
                s = stride if i == 0 else 1
                blocks.append(
                    CifarBasicBlock(in_chs, out_chs, s, shortcut, next(rates), shortcut_pool)
                )
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.global_pool = GlobalPool("avg")
        self.fc = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights(zero_init_last)

    def init_weights(self, zero_init_last: bool = False) -> None:
        """He-normal convolutions (the paper's initialisation), BN to (1, 0), fc N(0, 0.01)."""
        he_init_(self)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, CifarBasicBlock):
                    m.zero_init_last()

    def feature_points(self) -> list[tuple[str, int]]:
        """The three stages (strides 1, 2, 4)."""
        return [("layer1", 1), ("layer2", 2), ("layer3", 4)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # N x 16 x 32 x 32
        x = self.layer1(x)  # N x 16 x 32 x 32
        x = self.layer2(x)  # N x 32 x 16 x 16
        return self.layer3(x)  # N x 64 x 8 x 8

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # N x 64
        return x if pre_logits else self.fc(x)


class WideBasicBlock(nn.Module):
    """Pre-activation block of Wide ResNet: BN-ReLU-conv3x3, BN-ReLU-dropout-conv3x3, plus shortcut.

    Where the shape changes the shortcut is a 1x1 convolution applied to the pre-activated input,
    as in the authors' code.
    """

    def __init__(
        self, in_chs: int, out_chs: int, stride: int, drop_rate: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.dropout = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, 1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_chs != out_chs:
            self.shortcut = nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)
        self.drop_path = drop_path_or_identity(drop_path)

    def zero_init_last(self) -> None:
        """Zero the last convolution (a pre-activation branch ends with it, not with a BN)."""
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return shortcut + self.drop_path(out)


class WideResNet(ZooModel):
    """Wide ResNet WRN-d-k for CIFAR (Zagoruyko & Komodakis 2016, Table 1).

    A 3x3 convolution with 16 filters, three groups of (d-4)/6 pre-activation blocks of width
    16k, 32k and 64k, then BN-ReLU, global average pooling and the classifier.

    Args:
        depth: d, with (d-4) divisible by 6 (28 for WRN-28-10).
        widen_factor: k.
        num_classes: classifier outputs; 0 leaves the head returning pooled features.
        in_chans: input image channels.
        drop_rate: dropout between the two convolutions of each block (the paper's best CIFAR
            results use 0.3; 0 by default).
        drop_path_rate: stochastic depth, block l of L dropped with probability rate * l / L.
        zero_init_last: start every block as the identity.
    """

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        zero_init_last: bool = False,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        if depth < 10 or (depth - 4) % 6:
            raise ModelArgumentError(
                f"Wide ResNet depth must be 6n+4 (16, 22, 28, 40), got {depth}"
            )
        if widen_factor < 1:
            raise ModelArgumentError(f"widen_factor must be a positive integer, got {widen_factor}")
        check_rate("drop_rate", drop_rate)
        n = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, widths[-1]
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, padding=1, bias=False)
        rates = iter(linear_drop_rates(drop_path_rate, 3 * n))
        stages, in_chs = [], 16
        for out_chs, stride in zip(widths, (1, 2, 2), strict=True):
            blocks = []
            for i in range(n):
                s = stride if i == 0 else 1
                blocks.append(WideBasicBlock(in_chs, out_chs, s, drop_rate, next(rates)))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn1 = nn.BatchNorm2d(widths[-1])  # the last pre-activation blocks leave un-normalised
        self.relu = nn.ReLU(inplace=True)
        self.global_pool = GlobalPool("avg")
        self.fc = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights(zero_init_last)

    def init_weights(self, zero_init_last: bool = False) -> None:
        """He-normal convolutions, BN to (1, 0), fc N(0, 0.01)."""
        he_init_(self)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, WideBasicBlock):
                    m.zero_init_last()

    def feature_points(self) -> list[tuple[str, int]]:
        """The first two stages (strides 1, 2) and the final BN-ReLU after the third (4)."""
        return [("layer1", 1), ("layer2", 2), ("relu", 4)]

    def checkpoint_units(self) -> list[nn.Module]:
        """Every block of the three stages."""
        return [*self.layer1, *self.layer2, *self.layer3]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # N x 16 x 32 x 32
        x = self.layer1(x)  # N x 16k x 32 x 32
        x = self.layer2(x)  # N x 32k x 16 x 16
        x = self.layer3(x)  # N x 64k x 8 x 8
        return self.relu(self.bn1(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # N x 64k
        return x if pre_logits else self.fc(x)


_CIFAR = (3, 32, 32)


@register_model(input_size=_CIFAR)
def resnet20(**kwargs) -> CifarResNet:
    """ResNet-20 for CIFAR (He et al. 2015, Deep residual learning, sec. 4.2), 0.27M params."""
    return CifarResNet(20, **kwargs)


@register_model(input_size=_CIFAR)
def resnet32(**kwargs) -> CifarResNet:
    """ResNet-32 for CIFAR (He et al. 2015, Deep residual learning, sec. 4.2), 0.46M params."""
    return CifarResNet(32, **kwargs)


@register_model(input_size=_CIFAR)
def resnet44(**kwargs) -> CifarResNet:
    """ResNet-44 for CIFAR (He et al. 2015, Deep residual learning, sec. 4.2), 0.66M params."""
    return CifarResNet(44, **kwargs)


@register_model(input_size=_CIFAR)
def resnet56(**kwargs) -> CifarResNet:
    """ResNet-56 for CIFAR (He et al. 2015, Deep residual learning, sec. 4.2), 0.85M params."""
    return CifarResNet(56, **kwargs)


@register_model(input_size=_CIFAR)
def resnet110(**kwargs) -> CifarResNet:
    """ResNet-110 for CIFAR (He et al. 2015, Deep residual learning, sec. 4.2), 1.7M params."""
    return CifarResNet(110, **kwargs)


@register_model(input_size=_CIFAR)
def plain20(**kwargs) -> CifarResNet:
    """Plain-20 for CIFAR (He et al. 2015, sec. 4.2): ResNet-20 without shortcuts, 0.27M params."""
    return CifarResNet(20, shortcut=False, **kwargs)


@register_model(input_size=_CIFAR)
def plain32(**kwargs) -> CifarResNet:
    """Plain-32 for CIFAR (He et al. 2015, sec. 4.2): ResNet-32 without shortcuts, 0.46M params."""
    return CifarResNet(32, shortcut=False, **kwargs)


@register_model(input_size=_CIFAR)
def plain44(**kwargs) -> CifarResNet:
    """Plain-44 for CIFAR (He et al. 2015, sec. 4.2): ResNet-44 without shortcuts, 0.66M params."""
    return CifarResNet(44, shortcut=False, **kwargs)


@register_model(input_size=_CIFAR)
def plain56(**kwargs) -> CifarResNet:
    """Plain-56 for CIFAR (He et al. 2015, sec. 4.2): ResNet-56 without shortcuts, 0.85M params."""
    return CifarResNet(56, shortcut=False, **kwargs)


@register_model(input_size=_CIFAR)
def plain110(**kwargs) -> CifarResNet:
    """Plain-110 for CIFAR (He et al. 2015, sec. 4.2): ResNet-110 without shortcuts, 1.7M params."""
    return CifarResNet(110, shortcut=False, **kwargs)


@register_model(input_size=_CIFAR)
def resnet110_sd(**kwargs) -> CifarResNet:
    """ResNet-110 with stochastic depth (Huang et al. 2016, Deep networks with stochastic depth).

    The paper's CIFAR setting: linear decay to p_L = 0.5, so the 54th (last) block is dropped
    half of the time while training and the first with probability 0.5/54; the transitional
    shortcuts average-pool 2x2 before the zero padding, as the authors' code does. Their
    convolutions also have a bias, redundant before batch norm and left out here.
    """
    kwargs.setdefault("drop_path_rate", 0.5)
    kwargs.setdefault("shortcut_pool", "avg")
    return CifarResNet(110, **kwargs)


@register_model(input_size=_CIFAR)
def wrn16_4(**kwargs) -> WideResNet:
    """WRN-16-4 (Zagoruyko & Komodakis 2016, Table 4: 2.7M params), the small Wide ResNet."""
    return WideResNet(16, 4, **kwargs)


@register_model(input_size=_CIFAR)
def wrn40_4(**kwargs) -> WideResNet:
    """WRN-40-4 (Zagoruyko & Komodakis 2016, Table 4: 8.9M params), thin and deep."""
    return WideResNet(40, 4, **kwargs)


@register_model(input_size=_CIFAR)
def wrn28_10(**kwargs) -> WideResNet:
    """WRN-28-10 (Zagoruyko & Komodakis 2016, Wide residual networks), 36.5M params, CIFAR."""
    return WideResNet(28, 10, **kwargs)
