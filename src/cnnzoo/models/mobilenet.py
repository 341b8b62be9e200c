"""MobileNet v1 (Howard et al. 2017): a stack of depthwise separable convolutions.

The network is the paper's Table 1 read as rows; the width multiplier ``alpha`` thins every layer
and the resolution multiplier ``rho`` is simply the input size the model is built for (global
average pooling makes any input of at least 32x32 work).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .layers import (
    ConvBNAct,
    DepthwiseSeparableConv,
    GlobalPool,
    check_choice,
    check_count,
    check_rate,
)

STEM_CHANNELS = 32  # Table 1, row 1: Conv / s2, 3x3x3x32 -> 112x112x32

# Table 1 after the stem: one depthwise separable block per row.
# out_channels, stride
MOBILENET_V1_ROWS: tuple[tuple[int, int], ...] = (
    (64, 1),  # 112x112x64
    (128, 2),  # 56x56x128
    (128, 1),
    (256, 2),  # 28x28x256
    (256, 1),
    (512, 2),  # 14x14x512
    (512, 1),  # the five 14x14x512 rows ("5x" in the table)
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),  # 7x7x1024
    (1024, 1),  # Table 1 prints "s2" here, a typo: the output stays 7x7 (as in TF-slim and timm)
)


def scaled_channels(channels: int, width_mult: float, min_channels: int = 8) -> int:
    """``alpha * channels`` floored, never below 8 (TF-slim's ``depth`` rule, ``min_depth=8``)."""
    return max(int(channels * width_mult), min_channels)


class MobileNetV1(ZooModel):
    """MobileNet v1 for ImageNet-sized input (224x224x3 by default), 4.2M parameters at alpha=1.

    Every convolution is followed by batch norm and ReLU, as in the paper; ``act="relu6"`` gives
    the clipped ReLU of TensorFlow's reference and timm, so timm's ``mobilenetv1_100`` weights give
    the same outputs. The paper has no dropout; ``drop_rate`` adds one before the classifier.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        resolution: int = 224,
        act: str = "relu",
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        if not 0.0 < width_mult <= 4.0:
            raise ModelArgumentError(f"width_mult (alpha) must be in (0, 4], got {width_mult}")
        if resolution < 32:
            raise ModelArgumentError(
                f"resolution (rho * 224) must be at least 32 pixels, got {resolution}"
            )
        check_choice("act", act, ("relu", "relu6"))
        check_rate("drop_rate", drop_rate)
        act_layer = nn.ReLU if act == "relu" else nn.ReLU6
        self.width_mult, self.resolution = width_mult, resolution
        self.input_size = (in_chans, resolution, resolution)  # what the model was built for
        self.num_classes, self.in_chans = num_classes, in_chans

        chs = scaled_channels(STEM_CHANNELS, width_mult)
        self.stem = ConvBNAct(in_chans, chs, 3, stride=2)  # 112x112x32
        if act_layer is not nn.ReLU:
            self.stem.act = act_layer(inplace=True)
        blocks = []
        for out_chs, stride in MOBILENET_V1_ROWS:
            out_chs = scaled_channels(out_chs, width_mult)
            blocks.append(DepthwiseSeparableConv(chs, out_chs, stride, act_layer=act_layer))
            chs = out_chs
        self.features = nn.Sequential(*blocks)  # 7x7x1024 at 224x224
        self.num_features = chs
        self.global_pool = GlobalPool("avg")  # Table 1's "Avg Pool / s1, Pool 7x7"
        self.drop = nn.Dropout(drop_rate)
        self.fc = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def feature_points(self) -> list[tuple[str, int]]:
        """The last row at each resolution (timm's five stages): strides 2, 4, 8, 16, 32."""
        points, reduction = [], 2  # the stem's stride
        rows = MOBILENET_V1_ROWS
        for i, (_, stride) in enumerate(rows):
            reduction *= stride
            if i + 1 == len(rows) or rows[i + 1][1] == 2:
                points.append((f"features.{i}", reduction))
        return points

    def checkpoint_units(self) -> list[nn.Module]:
        """Every depthwise separable block."""
        return list(self.features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # N x 32 x 112 x 112
        return self.features(x)  # N x 1024 x 7 x 7

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # N x 1024
        return x if pre_logits else self.fc(self.drop(x))

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename the keys of timm's ``mobilenetv1_*`` (``blocks.S.I.conv_dw``...) to ours.

        timm groups the 13 separable blocks into 5 stages; ours are Table 1's rows, numbered in
        order. Keys that are already ours pass through unchanged. (Build with ``act="relu6"`` for
        timm's outputs.)
        """
        stage_sizes = _stage_sizes()
        renames = {"conv_dw": "dw.conv", "bn1": "dw.bn", "conv_pw": "pw.conv", "bn2": "pw.bn"}
        out = {}
        for key, value in state_dict.items():
            new = key
            if key.startswith("conv_stem."):
                new = "stem.conv." + key[len("conv_stem.") :]
            elif key.startswith("bn1."):
                new = "stem.bn." + key[len("bn1.") :]
            elif key.startswith("classifier."):
                new = "fc." + key[len("classifier.") :]
            elif m := re.match(r"blocks\.(\d+)\.(\d+)\.(conv_dw|bn1|conv_pw|bn2)\.(.+)", key):
                stage, idx, layer, rest = int(m[1]), int(m[2]), m[3], m[4]
                if stage < len(stage_sizes):
                    row = sum(stage_sizes[:stage]) + idx
                    new = f"features.{row}.{renames[layer]}.{rest}"
            out[new] = value
        return out


def _stage_sizes() -> list[int]:
    """Rows per stage, a stage starting at each stride-2 row (and at the first row): 1,2,2,6,2."""
    sizes: list[int] = []
    for i, (_, stride) in enumerate(MOBILENET_V1_ROWS):
        if i == 0 or stride == 2:
            sizes.append(0)
        sizes[-1] += 1
    return sizes


@register_model
def mobilenet_v1(**kwargs) -> MobileNetV1:
    """MobileNet v1 (Howard et al. 2017, MobileNets: efficient CNNs for mobile vision), 4.2M."""
    return MobileNetV1(**kwargs)


@register_model
def mobilenet_v1_075(**kwargs) -> MobileNetV1:
    """MobileNet v1, width multiplier 0.75 (Howard et al. 2017), 2.6M parameters."""
    return MobileNetV1(width_mult=0.75, **kwargs)


@register_model
def mobilenet_v1_050(**kwargs) -> MobileNetV1:
    """MobileNet v1, width multiplier 0.5 (Howard et al. 2017), 1.3M parameters."""
    return MobileNetV1(width_mult=0.5, **kwargs)


@register_model
def mobilenet_v1_025(**kwargs) -> MobileNetV1:
    """MobileNet v1, width multiplier 0.25 (Howard et al. 2017), 0.47M parameters."""
    return MobileNetV1(width_mult=0.25, **kwargs)
