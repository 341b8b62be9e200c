"""Inception-ResNet-v2 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning", Figure 15 with Figures 16-19).

The stem, 10 x Inception-ResNet-A (35x35), Reduction-A, 20 x Inception-ResNet-B (17x17),
Reduction-B, 10 x Inception-ResNet-C (8x8): Inception branches whose concatenation a linear 1x1
convolution projects back to the input depth, scaled down (section 3.3) and added to the input.
TF-slim's network as timm builds it, attribute for attribute, so timm's ``inception_resnet_v2``
weight files load key for key.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from ._base import ZooModel
from .googlenet import conv_bn, refuse_aux_logits
from .inception_v4 import ReductionA
from .layers import DropPath, GlobalPool, check_count, check_rate, he_init_


class _Residual(nn.Module):
    """``act(x + drop_path(scale * up(concat(branches(x)))))``: the Inception-ResNet pattern."""

    scale: float  # the residual's scale (section 3.3)
    drop_path: nn.Module
    conv2d: nn.Conv2d  # the linear 1x1 up-projection back to the input depth

    def residual(self, x: torch.Tensor, branches: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.conv2d(branches) * self.scale)

    def zero_init_last(self) -> None:
        """Zero the linear up-projection, so the block starts as ``act(x)``."""
        nn.init.zeros_(self.conv2d.weight)
        nn.init.zeros_(self.conv2d.bias)


class Mixed5b(nn.Module):
    """Inception-ResNet-v2's last stem module (TF-slim's; timm's ``Mixed_5b``), 35x35x192 ->
    35x35x320: 1x1 (96) | 1x1-5x5 (64) | 1x1-3x3-3x3 (96) | avgpool-1x1 (64)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = conv_bn(192, 96, 1)
        self.branch1 = nn.Sequential(conv_bn(192, 48, 1), conv_bn(48, 64, 5, padding=2))
        self.branch2 = nn.Sequential(
            conv_bn(192, 64, 1), conv_bn(64, 96, 3, padding=1), conv_bn(96, 96, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn(192, 64, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [b(x) for b in (self.branch0, self.branch1, self.branch2, self.branch3)], 1
        )


class InceptionResNetA(_Residual):
    """Inception-ResNet-A (Figure 16; timm's ``Block35``), 35x35x320: 1x1 | 1x1-3x3 |
    1x1-3x3-3x3 (32, 32, 64 deep), a linear 1x1 back to 320, scaled by 0.17, added, ReLU."""

    def __init__(self, scale: float = 0.17, drop_path: float = 0.0) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = conv_bn(320, 32, 1)
        self.branch1 = nn.Sequential(conv_bn(320, 32, 1), conv_bn(32, 32, 3, padding=1))
        self.branch2 = nn.Sequential(
            conv_bn(320, 32, 1), conv_bn(32, 48, 3, padding=1), conv_bn(48, 64, 3, padding=1)
        )
        self.conv2d = nn.Conv2d(128, 320, 1)  # linear: no BN, no ReLU (section 3.1)
        self.drop_path = DropPath(drop_path)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)
        return self.act(self.residual(x, out))


class InceptionResNetB(_Residual):
    """Inception-ResNet-B (Figure 17; timm's ``Block17``), 17x17x1088: 1x1 (192) |
    1x1-1x7-7x1 (192), linear 1x1 back to 1088, scaled by 0.10, added, ReLU."""

    def __init__(self, scale: float = 0.10, drop_path: float = 0.0) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = conv_bn(1088, 192, 1)
        self.branch1 = nn.Sequential(
            conv_bn(1088, 128, 1),
            conv_bn(128, 160, (1, 7), padding=(0, 3)),
            conv_bn(160, 192, (7, 1), padding=(3, 0)),
        )
        self.conv2d = nn.Conv2d(384, 1088, 1)
        self.drop_path = DropPath(drop_path)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.branch0(x), self.branch1(x)), 1)
        return self.act(self.residual(x, out))


class ReductionResNetB(nn.Module):
    """Reduction-B of Inception-ResNet-v2 (Figure 18; timm's ``Mixed_7a``), 17x17x1088 ->
    8x8x2080: 1x1-3x3/2 (384) | 1x1-3x3/2 (288) | 1x1-3x3-3x3/2 (320) | maxpool/2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(conv_bn(1088, 256, 1), conv_bn(256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(conv_bn(1088, 256, 1), conv_bn(256, 288, 3, stride=2))
        self.branch2 = nn.Sequential(
            conv_bn(1088, 256, 1), conv_bn(256, 288, 3, padding=1), conv_bn(288, 320, 3, stride=2)
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [b(x) for b in (self.branch0, self.branch1, self.branch2, self.branch3)], 1
        )


class InceptionResNetC(_Residual):
    """Inception-ResNet-C (Figure 19; timm's ``Block8``), 8x8x2080: 1x1 (192) | 1x1-1x3-3x1
    (256), linear 1x1 back to 2080, scaled by 0.20, added, ReLU (none after the last block)."""

    def __init__(self, scale: float = 0.20, no_relu: bool = False, drop_path: float = 0.0) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = conv_bn(2080, 192, 1)
        self.branch1 = nn.Sequential(
            conv_bn(2080, 192, 1),
            conv_bn(192, 224, (1, 3), padding=(0, 1)),
            conv_bn(224, 256, (3, 1), padding=(1, 0)),
        )
        self.conv2d = nn.Conv2d(448, 2080, 1)
        self.drop_path = DropPath(drop_path)
        self.relu = nn.Identity() if no_relu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.branch0(x), self.branch1(x)), 1)
        return self.relu(self.residual(x, out))


class InceptionResNetV2(ZooModel):
    """Inception-ResNet-v2 on 299x299 images, timm's ``inception_resnet_v2`` key for key
    (55,843,464 parameters for 1000 classes).

    Departures from the paper, all TF-slim's (whose weights timm ported): the stem is Inception
    v3's plus ``Mixed5b`` (35x35x320) instead of Figure 3's (35x35x384), so the 35x35 blocks
    are 320 deep, the 17x17 ones 1088 and the 8x8 ones 2080, not the 384/1154/2048 of Figures
    16-19; a last ``block8`` without ReLU and a 1x1 ``conv2d_7b`` to 1536 features. Scales
    of the residuals 0.17, 0.10, 0.20 (the paper: "between 0.1 and 0.3"). ``drop_path_rate``
    adds stochastic depth to the 40 residual branches, growing linearly from ``rate/40`` to
    ``rate`` (the rule of Huang et al. 2016). ``zero_init_last`` zeroes each residual block's
    up-projection, so that every block starts as ``act(x)``.
    """

    aux_logits = False  # no auxiliary heads (the same attribute as GoogLeNet's and v3's)
    head_name = "classif"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        zero_init_last: bool = False,
        aux_logits: bool = False,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        refuse_aux_logits("inception_resnet_v2", aux_logits)
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("drop_rate", drop_rate)
        check_rate("drop_path_rate", drop_path_rate)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 1536
        dpr = iter(drop_path_rate * (i + 1) / 40 for i in range(40))  # linear decay rule

        self.conv2d_1a = conv_bn(in_chans, 32, 3, stride=2)  # 149x149x32
        self.conv2d_2a = conv_bn(32, 32, 3)  # 147x147x32
        self.conv2d_2b = conv_bn(32, 64, 3, padding=1)  # 147x147x64
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)  # 73x73x64
        self.conv2d_3b = conv_bn(64, 80, 1)  # 73x73x80
        self.conv2d_4a = conv_bn(80, 192, 3)  # 71x71x192
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)  # 35x35x192
        self.mixed_5b = Mixed5b()  # 35x35x320
        self.repeat = nn.Sequential(*[InceptionResNetA(drop_path=next(dpr)) for _ in range(10)])
        self.mixed_6a = ReductionA(320, k=256, l=256, m=384, n=384)  # 17x17x1088
        self.repeat_1 = nn.Sequential(*[InceptionResNetB(drop_path=next(dpr)) for _ in range(20)])
        self.mixed_7a = ReductionResNetB()  # 8x8x2080
        self.repeat_2 = nn.Sequential(*[InceptionResNetC(drop_path=next(dpr)) for _ in range(9)])
        self.block8 = InceptionResNetC(scale=1.0, no_relu=True, drop_path=next(dpr))
        self.conv2d_7b = conv_bn(2080, 1536, 1)  # 8x8x1536
        self.global_pool = GlobalPool("avg")
        self.head_drop = nn.Dropout(drop_rate)
        self.classif = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights(zero_init_last)

    def init_weights(self, zero_init_last: bool = False) -> None:
        he_init_(self)
        if zero_init_last:  # every residual block starts as act(x)
            for m in self.modules():
                if isinstance(m, _Residual):
                    m.zero_init_last()

    def feature_points(self) -> list[tuple[str, int]]:
        """timm's: conv2d_2b (stride 2), conv2d_4a (4), the 35x35 repeat (8), the 17x17
        repeat_1 (16), conv2d_7b (32)."""
        return [
            ("conv2d_2b", 2),
            ("conv2d_4a", 4),
            ("repeat", 8),
            ("repeat_1", 16),
            ("conv2d_7b", 32),
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))  # N x 64 x 147 x 147
        x = self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x)))  # N x 192 x 71 x 71
        x = self.mixed_5b(self.maxpool_5a(x))  # N x 320 x 35 x 35
        x = self.mixed_6a(self.repeat(x))  # N x 1088 x 17 x 17
        x = self.mixed_7a(self.repeat_1(x))  # N x 2080 x 8 x 8
        x = self.block8(self.repeat_2(x))  # N x 2080 x 8 x 8
        return self.conv2d_7b(x)  # N x 1536 x 8 x 8

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))  # N x 1536
        return x if pre_logits else self.classif(x)


@register_model(input_size=(3, 299, 299))
def inception_resnet_v2(**kwargs) -> InceptionResNetV2:
    """Inception-ResNet-v2 (Szegedy et al. 2016, Inception-v4, Inception-ResNet...), timm's."""
    return InceptionResNetV2(**kwargs)
