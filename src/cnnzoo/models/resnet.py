"""ResNet (He et al. 2015) for ImageNet and its descendants built from the same two blocks:
Wide ResNet-50-2, ResNeXt (Xie et al. 2017), SE-ResNet/SE-ResNeXt (Hu et al. 2017), and stochastic
depth (Huang et al. 2016) as a ``drop_path_rate`` option on all of them.

Attribute names are torchvision's (``conv1 bn1 layer1..4 downsample fc``; SE adds timm's
``se.fc1``/``se.fc2``), so state_dicts saved from ``torchvision.models.resnet50`` or
``timm.create_model("seresnet50")`` load key by key.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .layers import (
    DropPath,
    GlobalPool,
    PadSkippingConv2d,
    SqueezeExcite,
    check_count,
    check_rate,
    he_init_,
)


def conv3x3(in_chs: int, out_chs: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a batch norm follows); one-pixel maps (an ImageNet
    ResNet's last stage on 32x32 images) skip the all-padding taps (``PadSkippingConv2d``)."""
    return PadSkippingConv2d(in_chs, out_chs, 3, stride, padding=1, groups=groups, bias=False)


def conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (a batch norm follows)."""
    return PadSkippingConv2d(in_chs, out_chs, 1, stride, bias=False)


def drop_path_or_identity(p: float) -> nn.Module:
    """``DropPath(p)``, or ``nn.Identity`` when there is nothing to drop (a simpler module tree)."""
    return DropPath(p) if p > 0 else nn.Identity()


def linear_drop_rates(rate: float, total: int) -> list[float]:
    """Stochastic depth's linear decay rule (Huang et al. 2016): block l = 1..L drops its residual
    branch with probability ``rate * l / L``, so the last one with ``rate`` (1 - p_L in the
    paper, where p_l are survival probabilities)."""
    check_rate("drop_path_rate", rate)
    return [rate * (i + 1) / total for i in range(total)]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: ResNet-18/34 (Fig. 2 left of the paper)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        drop_path: float = 0.0,
        se: bool = False,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ModelArgumentError(
                f"BasicBlock supports only groups=1, base_width=64, got {groups}, {base_width}"
            )
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes, reduction=16) if se else None
        self.drop_path = drop_path_or_identity(drop_path)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zero the last BN's scale so that the block starts as the identity (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(self.drop_path(out) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) and a shortcut: ResNet-50/101/152 (Fig. 5 right).

    The stride sits on the 3x3 convolution, not on the first 1x1 as in the paper: this is
    "ResNet v1.5" as torchvision and timm build it (about 0.5% better top-1, slightly slower).
    ``groups > 1`` makes it ResNeXt's grouped bottleneck (Xie et al. 2017, Fig. 3c), of inner
    width ``planes * base_width / 64 * groups``; ``se=True`` inserts squeeze-and-excitation after
    the last batch norm, before the addition (Hu et al. 2017, Fig. 3).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        drop_path: float = 0.0,
        se: bool = False,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_chs = planes * self.expansion
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)  # v1.5: stride here
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_chs)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(out_chs, reduction=16) if se else None
        self.drop_path = drop_path_or_identity(drop_path)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zero the last BN's scale so that the block starts as the identity (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(self.drop_path(out) + shortcut)


class ResNet(ZooModel):
    """ResNet for 224x224 images: 7x7/2 stem, 3x3/2 max-pool, four stages, global average pool.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        num_classes: classifier outputs; 0 leaves the head returning pooled features.
        in_chans: input image channels.
        groups: cardinality of the grouped 3x3 (ResNeXt); 1 for ResNet.
        width_per_group: inner width per group at the first stage (64 for ResNet, 128 for
            Wide ResNet-50-2, 4 for ResNeXt-50 32x4d).
        drop_path_rate: stochastic depth; block ``l`` of ``L`` drops its residual branch with
            probability ``drop_path_rate * l / L`` while training (the paper's linear decay).
        se: squeeze-and-excitation in every block (reduction 16).
        zero_init_last: start every block as the identity by zeroing its last BN's scale.
        drop_rate: dropout before the classifier (timm's ``drop_rate``; 0 in the paper).
        global_pool: "avg" (the paper), "max", or "" (no pooling; with ``num_classes=0``).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        drop_path_rate: float = 0.0,
        se: bool = False,
        zero_init_last: bool = False,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ModelArgumentError(f"layers must be four positive block counts, got {layers}")
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("drop_rate", drop_rate)
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        self.num_features = 512 * block.expansion
        self.groups, self.base_width = groups, width_per_group

        self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        rates = iter(linear_drop_rates(drop_path_rate, sum(layers)))
        self.inplanes = 64
        self.layer1 = self._make_layer(block, 64, layers[0], 1, rates, se)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, rates, se)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, rates, se)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, rates, se)
        del self.inplanes

        self.global_pool = GlobalPool("avg")
        self.fc = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights(zero_init_last)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int,
        rates: Iterator[float],
        se: bool,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # projection shortcut (option B of the paper) only where the shape changes
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        stage = []
        for i in range(blocks):
            stage.append(
                block(
                    self.inplanes,
                    planes,
                    stride if i == 0 else 1,
                    downsample if i == 0 else None,
                    self.groups,
                    self.base_width,
                    drop_path=next(rates),
                    se=se,
                )
            )
            self.inplanes = planes * block.expansion
        return nn.Sequential(*stage)

    def init_weights(self, zero_init_last: bool = False) -> None:
        """He-normal convolutions (fan-out), BN to (1, 0), classifier N(0, 0.01)."""
        he_init_(self)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_last()

    def feature_points(self) -> list[tuple[str, int]]:
        """timm's: the stem's ReLU (stride 2) and the four stages (4, 8, 16, 32)."""
        return [("relu", 2), ("layer1", 4), ("layer2", 8), ("layer3", 16), ("layer4", 32)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # N x 64 x 56 x 56
        x = self.layer1(x)  # N x 64e x 56 x 56  (e = block.expansion)
        x = self.layer2(x)  # N x 128e x 28 x 28
        x = self.layer3(x)  # N x 256e x 14 x 14
        return self.layer4(x)  # N x 512e x 7 x 7

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # N x 512e
        if self.drop_rate:
            x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)


@register_model
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (He et al. 2015, Deep residual learning for image recognition), 11.7M params."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (He et al. 2015, Deep residual learning for image recognition), 21.8M params."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (He et al. 2015, Deep residual learning for image recognition), 25.6M params."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    """ResNet-101 (He et al. 2015, Deep residual learning for image recognition), 44.5M params."""
    return ResNet(Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    """ResNet-152 (He et al. 2015, Deep residual learning for image recognition), 60.2M params."""
    return ResNet(Bottleneck, (3, 8, 36, 3), **kwargs)


@register_model
def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016, Wide residual networks), 68.9M params.

    ResNet-50 with the bottleneck's inner width doubled, as torchvision builds it.
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), width_per_group=128, **kwargs)


@register_model
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 32x4d (Xie et al. 2017, Aggregated residual transformations), 25.0M params."""
    return ResNet(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4, **kwargs)


@register_model
def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 32x8d (Xie et al. 2017, Aggregated residual transformations), 88.8M params."""
    return ResNet(Bottleneck, (3, 4, 23, 3), groups=32, width_per_group=8, **kwargs)


@register_model
def se_resnet50(**kwargs) -> ResNet:
    """SE-ResNet-50 (Hu et al. 2017, Squeeze-and-excitation networks), 28.1M params.

    timm's ``seresnet50``: ResNet-50 v1.5 with SE (reduction 16) in every bottleneck. The
    paper's Caffe model strides the first 1x1 instead (timm's ``legacy_seresnet50``).
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), se=True, **kwargs)


@register_model
def se_resnext50_32x4d(**kwargs) -> ResNet:
    """SE-ResNeXt-50 32x4d (Hu et al. 2017, Squeeze-and-excitation networks), 27.6M params.

    timm's ``seresnext50_32x4d``: ResNeXt-50 32x4d with SE (reduction 16) in every bottleneck.
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4, se=True, **kwargs)
