"""AlexNet (Krizhevsky, Sutskever & Hinton 2012): the lecture's network, the original two-tower
network, and torchvision's variant.

All three share one class: ``features`` (the CONV/POOL/NORM stack of a table below), ``avgpool``
(an ``AdaptiveAvgPool2d((6, 6))``) and ``classifier`` (FC6-FC7-FC8 with dropout), the attribute
names and indices of torchvision's ``AlexNet`` so that its weight files load key by key.

The adaptive pooling is the identity at the design size (CONV5's pooled map is already 6x6 at
227x227, or at 224x224 for the torchvision variant) and adds no parameters; it lets the network
run on other input sizes, down to the smallest whose MAX POOL3 output is not empty, exactly as
torchvision's AlexNet does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .features import sequential_points
from .layers import check_count, check_rate, he_init_

# A CONV row: (filters, kernel, stride, padding, groups). "M": MAX POOL 3x3 stride 2.
# "N": local response normalisation (LRN) across channels, the paper's constants (Sec. 3.3);
# "N2": the same within each of the two towers.
ConvRow = tuple[int, int, int, int, int]
# fmt: off
ALEXNET_CFGS: dict[str, list[ConvRow | str]] = {
    # The lecture's table: NORM after POOL (as in Caffe's reference CaffeNet; the paper
    # normalises before pooling -- the shapes and parameter count are the same either way).
    "alexnet": [
        (96, 11, 4, 0, 1), "M", "N",  # CONV1 55x55x96, POOL1 27x27x96, NORM1
        (256, 5, 1, 2, 1), "M", "N",  # CONV2 27x27x256, POOL2 13x13x256, NORM2
        (384, 3, 1, 1, 1),  # CONV3 13x13x384
        (384, 3, 1, 1, 1),  # CONV4 13x13x384
        (256, 3, 1, 1, 1), "M",  # CONV5 13x13x256, POOL3 6x6x256
    ],
    # The paper's two GPUs: CONV2, CONV4 and CONV5 see only the maps of their own tower, and
    # each GPU normalised its own half of the maps.
    "alexnet_2gpu": [
        (96, 11, 4, 0, 1), "M", "N2",
        (256, 5, 1, 2, 2), "M", "N2",
        (384, 3, 1, 1, 1),  # CONV3 reads both towers (the paper's cross-GPU layer)
        (384, 3, 1, 1, 2),
        (256, 3, 1, 1, 2), "M",
    ],
    # torchvision's variant ("One weird trick", Krizhevsky 2014): 64-192-384-256-256, no LRN,
    # CONV1 padded by 2 so that a 224x224 input gives 55x55.
    "alexnet_tv": [
        (64, 11, 4, 2, 1), "M",
        (192, 5, 1, 2, 1), "M",
        (384, 3, 1, 1, 1),
        (256, 3, 1, 1, 1),
        (256, 3, 1, 1, 1), "M",
    ],
}
# fmt: on

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0  # the paper's n, alpha, beta, k


def paper_lrn() -> nn.LocalResponseNorm:
    """The paper's response normalisation ``b = a / (k + alpha * sum_{n neighbours} a^2)^beta``.

    PyTorch's ``LocalResponseNorm`` divides ``alpha`` by ``size`` (as Caffe does), so the paper's
    ``alpha = 1e-4`` is passed as ``size * 1e-4``.
    """
    return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_SIZE * LRN_ALPHA, beta=LRN_BETA, k=LRN_K)


class TowerLRN(nn.Module):
    """The paper's LRN within each tower: a channel's neighbours never cross to the other GPU.

    A leaf module (no ``LocalResponseNorm`` child), so per-layer tables show its 27x27x96 output.
    """

    def __init__(self, towers: int = 2) -> None:
        super().__init__()
        self.towers = towers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # each tower's maps become a sample of their own, so the window stops at the boundary
        t = x.reshape(n * self.towers, c // self.towers, h, w)
        t = F.local_response_norm(t, LRN_SIZE, LRN_SIZE * LRN_ALPHA, LRN_BETA, LRN_K)
        return t.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return (
            f"towers={self.towers}, size={LRN_SIZE}, alpha={LRN_ALPHA}, beta={LRN_BETA}, k={LRN_K}"
        )


def make_features(
    cfg: list[ConvRow | str], in_chans: int = 3, ceil_mode: bool = False
) -> tuple[nn.Sequential, int]:
    """The CONV/POOL/NORM stack of a table, and the number of channels it ends with.

    Each CONV is followed by its own ``ReLU`` module so that the indices match torchvision's
    (``features.0`` CONV1, ``features.3`` CONV2, ...). ``ceil_mode`` rounds pooled sizes up, as
    Caffe and cuda-convnet did (ZFNet needs it for the paper's 110 -> 55 -> 26 -> 13 sizes).
    """
    layers: list[nn.Module] = []
    chs = in_chans
    for row in cfg:
        if row == "M":
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=ceil_mode))
        elif row == "N":
            layers.append(paper_lrn())
        elif row == "N2":
            layers.append(TowerLRN(2))
        elif isinstance(row, tuple):
            out, k, s, p, g = row
            layers += [nn.Conv2d(chs, out, k, s, p, groups=g), nn.ReLU(inplace=True)]
            chs = out
        else:
            raise ModelArgumentError(f"unknown AlexNet table entry {row!r}")
    return nn.Sequential(*layers), chs


class AlexNet(ZooModel):
    """AlexNet-style network: a feature stack, 6x6 adaptive pooling, FC6-FC7-FC8.

    ``forward_features`` gives CONV5's pooled map (N x C x 6 x 6 at the design size);
    ``forward_head(x, pre_logits=True)`` gives FC7's 4,096 features after ReLU, the features of
    the lecture's transfer-learning slides; ``num_classes=0`` makes that the model's output.
    """

    head_name = "classifier.6"  # FC8

    def __init__(
        self,
        cfg: list[ConvRow | str],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
        fc_width: int = 4096,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("drop_rate", drop_rate)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, fc_width
        self.features, chs = make_features(cfg, in_chans, ceil_mode)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # identity at the design size
        # torchvision's order: dropout before FC6 and FC7, none before FC8.
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate),
            nn.Linear(chs * 6 * 6, fc_width),  # FC6
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(fc_width, fc_width),  # FC7
            nn.ReLU(inplace=True),
            self.new_head(num_classes),  # FC8
        )
        self.init_weights()

    def init_weights(self) -> None:
        """He init for the ReLU convolutions, N(0, 0.01) for the FC layers, zero biases."""
        he_init_(self)

    def feature_points(self) -> list[tuple[str, int]]:
        """The ReLU before each pool and the last pool, as timm picks VGG's."""
        return sequential_points(self.features, "features")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_sequential(
            self.features, x
        )  # N x 256 x 6 x 6 for the lecture's AlexNet at 227x227

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # N x 9216
        x = self.classifier[:-1](x)  # N x 4096: FC7 after ReLU
        return x if pre_logits else self.classifier[-1](x)


@register_model(input_size=(3, 227, 227))
def alexnet(**kwargs) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs), as the lecture.

    227x227x3 -> CONV1 96 11x11/4 -> 55x55x96 -> POOL1 -> 27x27x96 -> NORM1 -> CONV2 256 5x5 pad 2
    -> POOL2 -> 13x13x256 -> NORM2 -> CONV3 384 -> CONV4 384 -> CONV5 256 (3x3 pad 1) -> POOL3
    -> 6x6x256 -> FC6 4096 -> FC7 4096 -> FC8 1000; ReLU, dropout 0.5: 62,378,344 parameters.
    NORM is the paper's LRN (n=5, alpha=1e-4, beta=0.75, k=2).
    """
    return AlexNet(ALEXNET_CFGS["alexnet"], **kwargs)


@register_model(input_size=(3, 227, 227))
def alexnet_2gpu(**kwargs) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012) with the original two towers: 60,965,224 parameters.

    CONV2, CONV4 and CONV5 are grouped convolutions (groups=2): each half of the filters sees only
    the maps of its own GPU, and NORM1/NORM2 normalise each GPU's half of the maps separately
    (``TowerLRN``).
    """
    return AlexNet(ALEXNET_CFGS["alexnet_2gpu"], **kwargs)


@register_model(input_size=(3, 224, 224))
def alexnet_tv(**kwargs) -> AlexNet:
    """AlexNet as torchvision ships it (Krizhevsky 2014, One weird trick): 61,100,840 parameters.

    64-192-384-256-256 filters, no LRN; key-for-key with ``torchvision.models.alexnet`` so its
    state_dict loads with ``strict=True`` and gives the same outputs.
    """
    return AlexNet(ALEXNET_CFGS["alexnet_tv"], **kwargs)
