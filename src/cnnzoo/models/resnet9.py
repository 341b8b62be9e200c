"""ResNet-9, the DAWNBench CIFAR-10 network of David Page ("How to train your ResNet", Myrtle.ai,
2018; github.com/davidcpage/cifar10-fast), a descendant of He et al.'s ResNet: three stages of
3x3 conv-BN-ReLU with max-pooling, two of them followed by a residual block of two such layers.

    prep    conv 64                      32x32
    layer1  conv 128, pool, residual     16x16
    layer2  conv 256, pool                8x8
    layer3  conv 512, pool, residual      4x4
    head    global max-pool, linear (no bias), logits x 0.125

It reached 94% on CIFAR-10 in 79 s on a V100, and with the tricks of the series (frozen BN scales,
CELU, patch whitening, weight averaging, TTA) in 26 s. The options here are the architectural
ones of that series: ``act="celu"`` (alpha 0.075), ``pool_before_bn`` (max-pool right after the
convolution, so BN and the activation run on a quarter of the pixels), and the widths. The other
tricks are trainer options (``cnnzoo.train.tricks``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from ._base import ZooModel
from .layers import check_count

WIDTHS = (64, 128, 256, 512)  # prep, layer1, layer2, layer3
ACTS = ("relu", "celu", "gelu")
CELU_ALPHA = 0.075  # Page's CELU, a smoothed ReLU
LOGIT_SCALE = 0.125  # Page's Mul(0.125) after the classifier


def _act(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "celu":
        return nn.CELU(CELU_ALPHA)
    return nn.GELU()


class ConvBNAct(nn.Module):
    """3x3 convolution (no bias), BN, activation; with ``pool`` a 2x2 max-pool at the end (Page's
    order) or right after the convolution (``pool_before_bn``)."""

    def __init__(
        self, in_chs: int, out_chs: int, act: str, pool: bool = False, pool_before_bn: bool = False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = _act(act)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.pool_first = pool and pool_before_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.pool_first:
            return self.act(self.bn(self.pool(x)))
        return self.pool(self.act(self.bn(x)))


class Residual(nn.Module):
    """``x + res2(res1(x))``, two width-preserving ConvBNAct layers."""

    def __init__(self, chs: int, act: str) -> None:
        super().__init__()
        self.res1 = ConvBNAct(chs, chs, act)
        self.res2 = ConvBNAct(chs, chs, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res2(self.res1(x))


class ResNet9(ZooModel):
    """ResNet-9 of Page's DAWNBench entry (module docstring), for 32x32 RGB or 28x28 grey images.

    Args:
        num_classes: classifier outputs; 0 leaves the head returning the pooled features.
        in_chans: input channels (3 for CIFAR, 1 for Fashion-MNIST).
        widths: channels of prep, layer1, layer2, layer3 (Page's 64, 128, 256, 512).
        act: ``relu`` (Page's first network), ``celu`` (his later one) or ``gelu`` (airbench's).
        pool_before_bn: max-pool before BN and the activation instead of after.
        logit_scale: the classifier's output is multiplied by this (Page's 0.125).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        widths: tuple[int, int, int, int] = WIDTHS,
        act: str = "relu",
        pool_before_bn: bool = False,
        logit_scale: float = LOGIT_SCALE,
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"widths must be four positive channel counts, got {widths}")
        if act not in ACTS:
            raise ValueError(f"act must be one of {', '.join(ACTS)}, got {act!r}")
        w0, w1, w2, w3 = widths
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, w3
        self.logit_scale = float(logit_scale)
        pbb = pool_before_bn
        self.prep = ConvBNAct(in_chans, w0, act)
        self.layer1 = nn.Sequential(ConvBNAct(w0, w1, act, True, pbb), Residual(w1, act))
        self.layer2 = ConvBNAct(w1, w2, act, True, pbb)
        self.layer3 = nn.Sequential(ConvBNAct(w2, w3, act, True, pbb), Residual(w3, act))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = self.new_head(num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """PyTorch's default initialisation, as the DAWNBench code kept it; BN to (1, 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def feature_points(self) -> list[tuple[str, int]]:
        """The prep layer (stride 1) and the three stages, each after its 2x2 max-pool."""
        return [("prep", 1), ("layer1", 2), ("layer2", 4), ("layer3", 8)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prep(x)  # N x 64 x 32 x 32 (28 x 28 for Fashion-MNIST)
        x = self.layer1(x)  # N x 128 x 16 x 16 (14 x 14)
        x = self.layer2(x)  # N x 256 x 8 x 8 (7 x 7)
        return self.layer3(x)  # N x 512 x 4 x 4 (3 x 3)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)  # N x 512
        return x if pre_logits else self.fc(x) * self.logit_scale

    def new_head(self, num_classes: int) -> nn.Module:
        """Page's classifier has no bias (the 0.125 logit scale follows it in forward_head)."""
        return (
            nn.Linear(self.num_features, num_classes, bias=False) if num_classes else nn.Identity()
        )


@register_model(input_size=(3, 32, 32))
def resnet9(**kwargs) -> ResNet9:
    """ResNet-9 (Page 2018, How to train your ResNet; DAWNBench CIFAR-10), 6.57M params."""
    return ResNet9(**kwargs)
