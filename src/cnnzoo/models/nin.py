"""Network in Network (Lin, Chen & Yan 2013): mlpconv blocks and a global-average-pooling head.

An mlpconv block is a spatial convolution followed by two 1x1 convolutions ("cccp" layers in the
authors' Caffe files), each with a ReLU: a small MLP slid over every position. There are no
fully connected layers: the last 1x1 convolution outputs one map per class and a global average
pool turns each map into a class score.

Interface: the last 1x1 convolution is the classifier (``classifier``; ``num_classes`` sets its
filters). ``forward_features`` gives the map that enters it (N x 1024 x 6 x 6 for ``nin`` at
224x224, N x 192 x 8 x 8 for ``nin_cifar`` at 32x32), ``num_features`` is that map's depth, and
``forward_head(x, pre_logits=True)`` (or ``num_classes=0``) gives it globally average-pooled
(N x num_features), the network's pooled features.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from ._base import ZooModel
from .features import sequential_points
from .layers import check_count, he_init_


class MlpConv(nn.Sequential):
    """A conv (``conv``) and 1x1 convs (``cccp1``, ``cccp2``...), each followed by a ReLU."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel: int, stride: int, padding: int, cccp: tuple
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, padding)
        self.act = nn.ReLU(inplace=True)
        chs = out_chs
        for i, width in enumerate(cccp, 1):
            self.add_module(f"cccp{i}", nn.Conv2d(chs, width, 1))
            self.add_module(f"act{i}", nn.ReLU(inplace=True))
            chs = width


class NiN(ZooModel):
    """A stack of mlpconv blocks whose last 1x1 conv (``classifier``) gives one map per class.

    ``features`` is the stack of blocks, ending with the last block's conv and its first 1x1 conv;
    the final ReLU before the average pool is kept, as in the authors' models.
    """

    head_name = "classifier"  # the last 1x1 conv and its ReLU

    def __init__(
        self,
        features: nn.Sequential,
        num_features: int,
        num_classes: int,
        in_chans: int,
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, num_features
        self.features = features
        self.classifier = self.new_head(num_classes)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.init_weights()

    def new_head(self, num_classes: int) -> nn.Module:
        """The paper's last cccp (one map per class) and its ReLU, He-initialised."""
        if not num_classes:
            return nn.Identity()
        head = nn.Sequential(nn.Conv2d(self.num_features, num_classes, 1), nn.ReLU(inplace=True))
        he_init_(head)
        return head

    def init_weights(self) -> None:
        """He init for every (ReLU) convolution, zero biases."""
        he_init_(self)

    def feature_points(self) -> list[tuple[str, int]]:
        """The mlpconv block before each pool, and the last one."""
        return sequential_points(self.features, "features")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # N x num_features x H x W

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not pre_logits:
            x = self.classifier(x)  # N x num_classes x H x W: one confidence map per class
        return torch.flatten(self.global_pool(x), 1)


@register_model(input_size=(3, 224, 224))
def nin(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> NiN:
    """Network in Network (Lin et al. 2013), the ImageNet model of the authors' Caffe model zoo.

    Four mlpconv blocks, 96-256-384-1024 maps, the last giving 1000 maps, then a 6x6 global
    average pool: 224 -> 54x54x96 -> 27x27x96 -> 27x27x256 -> 13x13x256 -> 13x13x384 -> 6x6x384
    -> 6x6x1024 -> 6x6x1000 -> 1000; 7,595,176 parameters. Pools round up as Caffe's do
    (``ceil_mode``): (54 - 3) / 2 + 1 = 26.5 -> 27. Dropout 0.5 before the last block.
    """
    features = nn.Sequential(
        MlpConv(in_chans, 96, 11, 4, 0, (96, 96)),  # N x 96 x 54 x 54
        nn.MaxPool2d(3, 2, ceil_mode=True),  # N x 96 x 27 x 27
        MlpConv(96, 256, 5, 1, 2, (256, 256)),  # N x 256 x 27 x 27
        nn.MaxPool2d(3, 2, ceil_mode=True),  # N x 256 x 13 x 13
        MlpConv(256, 384, 3, 1, 1, (384, 384)),  # N x 384 x 13 x 13
        nn.MaxPool2d(3, 2, ceil_mode=True),  # N x 384 x 6 x 6
        nn.Dropout(drop_rate),
        MlpConv(384, 1024, 3, 1, 1, (1024,)),  # N x 1024 x 6 x 6; its last cccp: classifier
    )
    return NiN(features, 1024, num_classes, in_chans)


@register_model(input_size=(3, 32, 32))
def nin_cifar(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.5) -> NiN:
    """Network in Network (Lin et al. 2013), the paper's CIFAR-10 model: 966,986 parameters.

    mlpconv 192-160-96 (5x5), max pool 3x3/2, dropout; mlpconv 192-192-192 (5x5), average pool
    3x3/2, dropout; mlpconv 192-192-10 (3x3); global average pool over 8x8: 32 -> 32 -> 16 -> 8
    (pools round up, as the authors' cuda-convnet and Caffe files do).
    """
    features = nn.Sequential(
        MlpConv(in_chans, 192, 5, 1, 2, (160, 96)),  # N x 96 x 32 x 32
        nn.MaxPool2d(3, 2, ceil_mode=True),  # N x 96 x 16 x 16
        nn.Dropout(drop_rate),
        MlpConv(96, 192, 5, 1, 2, (192, 192)),  # N x 192 x 16 x 16
        nn.AvgPool2d(3, 2, ceil_mode=True),  # N x 192 x 8 x 8
        nn.Dropout(drop_rate),
        MlpConv(192, 192, 3, 1, 1, (192,)),  # N x 192 x 8 x 8; its last cccp: classifier
    )
    return NiN(features, 192, num_classes, in_chans)
