"""Inception-v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning").

Figure 9: the stem of Figure 3, 4 x Inception-A (35x35, Figure 4), Reduction-A (Figure 7),
7 x Inception-B (17x17, Figure 5), Reduction-B (Figure 8), 3 x Inception-C (8x8, Figure 6).
TF-slim's network as timm builds it, attribute for attribute, so timm's ``inception_v4`` weight
files load key for key. Inception-ResNet-v2, from the same paper, is in ``inception_resnet_v2``
and reuses ``ReductionA``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from ._base import ZooModel
from .googlenet import conv_bn, refuse_aux_logits
from .layers import GlobalPool, check_count, check_rate, he_init_


class Mixed3a(nn.Module):
    """Stem, 147x147x64 -> 73x73x160: 3x3/2 max-pool beside a 3x3/2 conv (96)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, stride=2)
        self.conv = conv_bn(64, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.maxpool(x), self.conv(x)), 1)


class Mixed4a(nn.Module):
    """Stem, 73x73x160 -> 71x71x192: 1x1-3x3 beside 1x1-7x1-1x7-3x3 (unpadded 3x3s, 96 each)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(conv_bn(160, 64, 1), conv_bn(64, 96, 3))
        self.branch1 = nn.Sequential(
            conv_bn(160, 64, 1),
            conv_bn(64, 64, (1, 7), padding=(0, 3)),
            conv_bn(64, 64, (7, 1), padding=(3, 0)),
            conv_bn(64, 96, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x)), 1)


class Mixed5a(nn.Module):
    """Stem, 71x71x192 -> 35x35x384: a 3x3/2 conv (192) beside a 3x3/2 max-pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv_bn(192, 192, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.conv(x), self.maxpool(x)), 1)


def stem_v4(in_chans: int = 3) -> list[nn.Module]:
    """The stem of Figure 3, 299x299x3 -> 35x35x384, as a list (timm keeps it flat in
    ``features[0:6]``): three 3x3 convolutions, then ``Mixed3a``, ``Mixed4a``, ``Mixed5a``."""
    return [
        conv_bn(in_chans, 32, 3, stride=2),  # 149x149x32
        conv_bn(32, 32, 3),  # 147x147x32
        conv_bn(32, 64, 3, padding=1),  # 147x147x64
        Mixed3a(),  # 73x73x160
        Mixed4a(),  # 71x71x192
        Mixed5a(),  # 35x35x384
    ]


class InceptionA(nn.Module):
    """Inception-A (Figure 4), 35x35x384: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | avgpool-1x1, 96 each."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = conv_bn(384, 96, 1)
        self.branch1 = nn.Sequential(conv_bn(384, 64, 1), conv_bn(64, 96, 3, padding=1))
        self.branch2 = nn.Sequential(
            conv_bn(384, 64, 1), conv_bn(64, 96, 3, padding=1), conv_bn(96, 96, 3, padding=1)
        )
        # TF's "SAME" average pool averages over the valid pixels only.
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn(384, 96, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [b(x) for b in (self.branch0, self.branch1, self.branch2, self.branch3)], 1
        )


class ReductionA(nn.Module):
    """Reduction-A (Figure 7), 35x35 -> 17x17: 3x3/2 (n) | 1x1 (k)-3x3 (l)-3x3/2 (m) | maxpool/2.

    The filter counts are the paper's Table 1: Inception-v4 k, l, m, n = 192, 224, 256, 384;
    Inception-ResNet-v2 256, 256, 384, 384. Output depth ``in_chs + n + m``.
    """

    def __init__(self, in_chs: int, k: int, l: int, m: int, n: int) -> None:  # noqa: E741
        super().__init__()
        self.branch0 = conv_bn(in_chs, n, 3, stride=2)
        self.branch1 = nn.Sequential(
            conv_bn(in_chs, k, 1), conv_bn(k, l, 3, padding=1), conv_bn(l, m, 3, stride=2)
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionB(nn.Module):
    """Inception-B (Figure 5), 17x17x1024: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = conv_bn(1024, 384, 1)
        self.branch1 = nn.Sequential(
            conv_bn(1024, 192, 1),
            conv_bn(192, 224, (1, 7), padding=(0, 3)),
            conv_bn(224, 256, (7, 1), padding=(3, 0)),
        )
        self.branch2 = nn.Sequential(
            conv_bn(1024, 192, 1),
            conv_bn(192, 192, (7, 1), padding=(3, 0)),
            conv_bn(192, 224, (1, 7), padding=(0, 3)),
            conv_bn(224, 224, (7, 1), padding=(3, 0)),
            conv_bn(224, 256, (1, 7), padding=(0, 3)),
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn(1024, 128, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [b(x) for b in (self.branch0, self.branch1, self.branch2, self.branch3)], 1
        )


class ReductionB(nn.Module):
    """Reduction-B of Inception-v4 (Figure 8), 17x17x1024 -> 8x8x1536:
    1x1-3x3/2 (192) | 1x1-1x7-7x1-3x3/2 (320) | maxpool/2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(conv_bn(1024, 192, 1), conv_bn(192, 192, 3, stride=2))
        self.branch1 = nn.Sequential(
            conv_bn(1024, 256, 1),
            conv_bn(256, 256, (1, 7), padding=(0, 3)),
            conv_bn(256, 320, (7, 1), padding=(3, 0)),
            conv_bn(320, 320, 3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionC(nn.Module):
    """Inception-C (Figure 6), 8x8x1536: 1x1 | 1x1-(1x3, 3x1) | 1x1-3x1-1x3-(1x3, 3x1) |
    avgpool-1x1; 256 + 512 + 512 + 256 = 1536 deep."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = conv_bn(1536, 256, 1)
        self.branch1_0 = conv_bn(1536, 384, 1)
        self.branch1_1a = conv_bn(384, 256, (1, 3), padding=(0, 1))
        self.branch1_1b = conv_bn(384, 256, (3, 1), padding=(1, 0))
        self.branch2_0 = conv_bn(1536, 384, 1)
        self.branch2_1 = conv_bn(384, 448, (3, 1), padding=(1, 0))
        self.branch2_2 = conv_bn(448, 512, (1, 3), padding=(0, 1))
        self.branch2_3a = conv_bn(512, 256, (1, 3), padding=(0, 1))
        self.branch2_3b = conv_bn(512, 256, (3, 1), padding=(1, 0))
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn(1536, 256, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.branch1_0(x)
        x1 = torch.cat((self.branch1_1a(x1), self.branch1_1b(x1)), 1)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        x2 = torch.cat((self.branch2_3a(x2), self.branch2_3b(x2)), 1)
        return torch.cat((self.branch0(x), x1, x2, self.branch3(x)), 1)


class InceptionV4(ZooModel):
    """Inception-v4 on 299x299 images, timm's ``inception_v4`` key for key (42,679,816
    parameters for 1000 classes): ``features`` (stem and blocks in one ``nn.Sequential``, as
    timm), global average pool, dropout (the paper keeps 0.8), ``last_linear``.
    Accepts inputs down to 75x75."""

    aux_logits = False  # no auxiliary heads (the same attribute as GoogLeNet's and v3's)
    head_name = "last_linear"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        aux_logits: bool = False,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        refuse_aux_logits("inception_v4", aux_logits)
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("drop_rate", drop_rate)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 1536
        self.features = nn.Sequential(
            *stem_v4(in_chans),  # 0-5: 35x35x384
            *[InceptionA() for _ in range(4)],  # 6-9: 35x35x384
            ReductionA(384, k=192, l=224, m=256, n=384),  # 10: 17x17x1024
            *[InceptionB() for _ in range(7)],  # 11-17: 17x17x1024
            ReductionB(),  # 18: 8x8x1536
            *[InceptionC() for _ in range(3)],  # 19-21: 8x8x1536
        )
        self.global_pool = GlobalPool("avg")
        self.head_drop = nn.Dropout(drop_rate)
        self.last_linear = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        he_init_(self)

    def feature_points(self) -> list[tuple[str, int]]:
        """timm's: the stem's 147x147 conv (stride 2) and Mixed3a (4), then the last block of
        each grid: the fourth Inception-A (8), the seventh Inception-B (16), the third C (32)."""
        return [
            ("features.2", 2),
            ("features.3", 4),
            ("features.9", 8),
            ("features.17", 16),
            ("features.21", 32),
        ]

    def checkpoint_units(self) -> list[nn.Module]:
        """Every block of ``features``."""
        return [m for m in self.features if list(m.children())]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x 1536 x 8 x 8

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))  # N x 1536
        return x if pre_logits else self.last_linear(x)


@register_model(input_size=(3, 299, 299))
def inception_v4(**kwargs) -> InceptionV4:
    """Inception-v4 (Szegedy et al. 2016, Inception-v4, Inception-ResNet...), timm's layout."""
    return InceptionV4(**kwargs)
