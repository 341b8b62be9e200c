"""BN-Inception, a.k.a. Inception v2 (Ioffe & Szegedy 2015, "Batch Normalization: Accelerating
Deep Network Training by Reducing Internal Covariate Shift", Figure 5 and section 4.2.1).

GoogLeNet with batch norm after every convolution, each 5x5 convolution factorised into two 3x3
(the "double 3x3" branch), average or max pooling inside the modules, and the grid reductions
done inside the modules 3c and 4e (stride-2 convolutions beside a stride-2 max-pool whose output
is passed through unprojected) instead of by pooling layers between them. No auxiliary heads.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .googlenet import refuse_aux_logits
from .layers import ConvBNAct, GlobalPool, check_count, check_rate, he_init_


def conv_bn(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    """Conv (no bias: BN follows) -> BatchNorm -> ReLU, "same" padding."""
    return ConvBNAct(in_chs, out_chs, kernel_size, stride)


class InceptionBN(nn.Module):
    """A BN-Inception module: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool-1x1, concatenated.

    With ``stride=2`` (modules 3c and 4e) the 3x3 branches end with a stride-2 convolution, there
    is no 1x1 branch (``ch1x1=0``), and the pool is a 3x3/2 max-pool passed through unprojected
    (``pool_proj=0``): the output is ``ch3x3 + dbl3x3 + in_chs`` deep at half the size.
    """

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        dbl3x3red: int,
        dbl3x3: int,
        pool: str,
        pool_proj: int,
        stride: int = 1,
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ModelArgumentError(f"pool must be 'avg' or 'max', got {pool!r}")
        if stride not in (1, 2):
            raise ModelArgumentError(f"stride must be 1 or 2, got {stride}")
        if stride == 2 and (ch1x1 or pool_proj or pool != "max"):
            raise ModelArgumentError(
                "a stride-2 module has no 1x1 branch and passes a max-pool through: "
                f"got ch1x1={ch1x1}, pool={pool!r}, pool_proj={pool_proj}"
            )
        self.out_chs = ch1x1 + ch3x3 + dbl3x3 + (pool_proj if stride == 1 else in_chs)
        self.branch1 = conv_bn(in_chs, ch1x1, 1) if ch1x1 else None
        self.branch2 = nn.Sequential(
            conv_bn(in_chs, ch3x3red, 1), conv_bn(ch3x3red, ch3x3, 3, stride)
        )
        self.branch3 = nn.Sequential(
            conv_bn(in_chs, dbl3x3red, 1),
            conv_bn(dbl3x3red, dbl3x3, 3),
            conv_bn(dbl3x3, dbl3x3, 3, stride),
        )
        if stride == 2:
            # Padded like the stride-2 convolutions, so the grids agree at every input size
            # (Caffe's unpadded ceil-mode pool agrees only on even grids, as 28 and 14 at 224).
            self.branch4 = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            # Caffe's average pool counts the zero padding, as do the published weights.
            Pool = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
            self.branch4 = nn.Sequential(Pool(3, 1, 1), conv_bn(in_chs, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [self.branch1(x)] if self.branch1 is not None else []
        out += [self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(out, 1)


# The paper's Figure 5, one row per module: name, #1x1, #3x3 reduce, #3x3, double #3x3 reduce,
# double #3x3, pool, pool proj (0 = "pass through"), stride. The table's "depth" column says
# 576 after 4c and 4d and 1024 after 4e, but its own filter counts give 608, 608 and 1056 (as
# in the Caffe model the authors' colleagues released); the filter counts are what is built.
BN_INCEPTION_CFG = (
    ("3a", 64, 64, 64, 64, 96, "avg", 32, 1),  # 28x28x256
    ("3b", 64, 64, 96, 64, 96, "avg", 64, 1),  # 28x28x320
    ("3c", 0, 128, 160, 64, 96, "max", 0, 2),  # 14x14x576
    ("4a", 224, 64, 96, 96, 128, "avg", 128, 1),  # 14x14x576
    ("4b", 192, 96, 128, 96, 128, "avg", 128, 1),  # 14x14x576
    ("4c", 160, 128, 160, 128, 160, "avg", 128, 1),  # 14x14x608 (table: 576)
    ("4d", 96, 128, 192, 160, 192, "avg", 128, 1),  # 14x14x608 (table: 576)
    ("4e", 0, 128, 192, 192, 256, "max", 0, 2),  # 7x7x1056 (table: 1024)
    ("5a", 352, 192, 320, 160, 224, "avg", 128, 1),  # 7x7x1024
    ("5b", 352, 192, 320, 192, 224, "max", 128, 1),  # 7x7x1024
)


class BNInception(ZooModel):
    """BN-Inception on 224x224 images: 11,285,224 parameters for 1000 classes.

    Layout: ``conv1`` 7x7/2 (64), ``maxpool1``, ``conv2`` 1x1 (64) and ``conv3`` 3x3 (192),
    ``maxpool2``, then ``blocks.inception3a`` ... ``blocks.inception5b`` from
    ``BN_INCEPTION_CFG``, global average pool, dropout, ``fc``. The convolutions have no bias
    (BN makes it redundant); the Caffe re-implementation, with a bias on each of its 10,016
    convolution channels, has 11,295,240. TF-slim's ``inception_v2`` makes the first convolution
    depthwise separable; here it is the table's ordinary 7x7 convolution. ``dropout`` is 0 by
    default: the paper removes it (section 4.2.1).
    """

    aux_logits = False  # no auxiliary heads (the same attribute as GoogLeNet's and v3's)

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.0,
        aux_logits: bool = False,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        refuse_aux_logits("inception_v2", aux_logits)
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("dropout", dropout)
        self.num_classes, self.in_chans = num_classes, in_chans
        self.conv1 = conv_bn(in_chans, 64, 7, stride=2)  # 112x112x64
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 56x56x64
        self.conv2 = conv_bn(64, 64, 1)  # 56x56x64 (the "#3x3 reduce" of the table's conv row)
        self.conv3 = conv_bn(64, 192, 3)  # 56x56x192
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 28x28x192
        blocks, chs = [], 192
        for name, *cfg, stride in BN_INCEPTION_CFG:
            block = InceptionBN(chs, *cfg, stride=stride)
            blocks.append((f"inception{name}", block))
            chs = block.out_chs
        self.blocks = nn.Sequential(OrderedDict(blocks))  # 7x7x1024
        self.num_features = chs
        self.global_pool = GlobalPool("avg")
        self.dropout = nn.Dropout(dropout)
        self.fc = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        he_init_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))  # N x 64 x 56 x 56
        x = self.maxpool2(self.conv3(self.conv2(x)))  # N x 192 x 28 x 28
        return self.blocks(x)  # N x 1024 x 7 x 7

    def feature_points(self) -> list[tuple[str, int]]:
        """conv1 (stride 2), conv3 (4), and the last module of each grid (8, 16, 32)."""
        last: dict[int, str] = {}  # reduction -> the last module working at it
        reduction = 8  # after maxpool2
        for name, *_, stride in BN_INCEPTION_CFG:
            reduction *= stride
            last[reduction] = f"blocks.inception{name}"
        return [("conv1", 2), ("conv3", 4)] + [(m, r) for r, m in sorted(last.items())]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))  # N x 1024
        return x if pre_logits else self.fc(x)


@register_model
def inception_v2(**kwargs) -> BNInception:
    """BN-Inception (Ioffe & Szegedy 2015, Batch Normalization), the paper's Figure 5 network."""
    return BNInception(**kwargs)
