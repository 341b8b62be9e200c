"""VGG (Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image
Recognition): only 3x3 convolutions at stride 1, pad 1, and 2x2 max pooling at stride 2.

The configurations are the paper's Table 1 (A, B, D, E = VGG-11, -13, -16, -19); ``_bn`` adds
batch norm after every convolution (not in the paper; torchvision's variant). Attribute names
``features`` / ``avgpool`` / ``classifier`` and their indices are torchvision's, so its
state_dicts load key by key.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .features import sequential_points
from .layers import check_count, check_rate, he_init_

# Filters of each 3x3 conv (stride 1, pad 1), "M" a 2x2 max pool at stride 2.
cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],  # VGG-16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],  # VGG-19
}  # fmt: skip


def make_layers(cfg: list[int | str], batch_norm: bool = False, in_chans: int = 3) -> nn.Sequential:
    """The convolutional stack of a configuration: conv(-BN)-ReLU per number, pool per "M"."""
    layers: list[nn.Module] = []
    chs = in_chans
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif isinstance(v, int):
            layers.append(nn.Conv2d(chs, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            chs = v
        else:
            raise ModelArgumentError(f"unknown VGG configuration entry {v!r}")
    return nn.Sequential(*layers)


class VGG(ZooModel):
    """VGG: the conv stack, 7x7 adaptive average pooling, FC-4096, FC-4096, FC-classes.

    The adaptive pooling (torchvision's) is the identity at 224x224, where the last pool already
    gives 7x7x512, and lets smaller or larger inputs through (32x32 and up).
    ``forward_head(x, pre_logits=True)`` gives the second FC layer's 4,096 features after ReLU
    and dropout (the "FC7" features of the transfer-learning slides).
    """

    head_name = "classifier.6"  # FC8

    def __init__(
        self,
        cfg: list[int | str],
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("drop_rate", drop_rate)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 4096
        self.features = make_layers(cfg, batch_norm, in_chans)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),  # FC6
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),  # FC7
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            self.new_head(num_classes),  # FC8
        )
        self.init_weights()

    def init_weights(self) -> None:
        """He init (fan-out) for the convolutions, N(0, 0.01) for the FC layers, as torchvision."""
        he_init_(self)

    def feature_points(self) -> list[tuple[str, int]]:
        """timm's: the ReLU before each pool (strides 1 to 16) and the last pool (32)."""
        return sequential_points(self.features, "features")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_sequential(self.features, x)  # N x 512 x 7 x 7 at 224x224

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # N x 25088
        x = self.classifier[:-1](x)  # N x 4096
        return x if pre_logits else self.classifier[-1](x)

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a timm VGG state_dict onto these (torchvision's) names; others pass unchanged.

        timm writes FC6 and FC7 as convolutions (``pre_logits.fc1``: 4096 x 512 x 7 x 7,
        ``pre_logits.fc2``: 4096 x 4096 x 1 x 1) and FC8 as ``head.fc``. A 7x7 convolution over
        the 7x7 map is FC6 with its weight flattened in the same (C, H, W) order. The outputs
        agree for inputs up to 224x224; above it timm's head slides FC6 over the larger map and
        averages, while this model pools the map to 7x7 first.
        """
        renames = {
            "pre_logits.fc1.": "classifier.0.",
            "pre_logits.fc2.": "classifier.3.",
            "head.fc.": "classifier.6.",
        }
        out: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            for old, new in renames.items():
                if key.startswith(old):
                    key = new + key[len(old) :]
                    if value.dim() == 4:  # conv weight -> linear weight
                        value = value.flatten(1)
                    break
            out[key] = value
        return out


@register_model
def vgg11(**kwargs) -> VGG:
    """VGG-11 (Simonyan & Zisserman 2014, configuration A): 132,863,336 parameters."""
    return VGG(cfgs["A"], **kwargs)


@register_model
def vgg13(**kwargs) -> VGG:
    """VGG-13 (Simonyan & Zisserman 2014, configuration B): 133,047,848 parameters."""
    return VGG(cfgs["B"], **kwargs)


@register_model
def vgg16(**kwargs) -> VGG:
    """VGG-16 (Simonyan & Zisserman 2014, configuration D): 138,357,544 parameters."""
    return VGG(cfgs["D"], **kwargs)


@register_model
def vgg19(**kwargs) -> VGG:
    """VGG-19 (Simonyan & Zisserman 2014, configuration E): 143,667,240 parameters."""
    return VGG(cfgs["E"], **kwargs)


@register_model
def vgg11_bn(**kwargs) -> VGG:
    """VGG-11 with batch norm (Simonyan & Zisserman 2014 + Ioffe & Szegedy 2015): 132,868,840."""
    return VGG(cfgs["A"], batch_norm=True, **kwargs)


@register_model
def vgg13_bn(**kwargs) -> VGG:
    """VGG-13 with batch norm (Simonyan & Zisserman 2014 + Ioffe & Szegedy 2015): 133,053,736."""
    return VGG(cfgs["B"], batch_norm=True, **kwargs)


@register_model
def vgg16_bn(**kwargs) -> VGG:
    """VGG-16 with batch norm (Simonyan & Zisserman 2014 + Ioffe & Szegedy 2015): 138,365,992."""
    return VGG(cfgs["D"], batch_norm=True, **kwargs)


@register_model
def vgg19_bn(**kwargs) -> VGG:
    """VGG-19 with batch norm (Simonyan & Zisserman 2014 + Ioffe & Szegedy 2015): 143,678,248."""
    return VGG(cfgs["E"], batch_norm=True, **kwargs)
