"""GoogLeNet (Szegedy et al. 2014, "Going deeper with convolutions"), a.k.a. Inception v1.

The Inception module two ways, both public blocks: ``NaiveInception`` (1x1, 3x3 and 5x5
convolutions and a 3x3 max-pool side by side, concatenated: the output is deeper than the input)
and ``Inception`` (1x1 "bottleneck" reductions before the 3x3 and 5x5 convolutions and a 1x1
projection after the pool). The network is torchvision's ``googlenet`` key for key, so its weight
files load unchanged; like torchvision, every convolution is followed by batch norm (eps 1e-3),
which the 2014 paper did not have.
"""

from __future__ import annotations

from collections import namedtuple
from functools import partial

import torch
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel, check_input, raise_if_too_small
from .layers import ConvBNAct, GlobalPool, check_count, check_rate, he_init_

# The paper (section 5) adds each auxiliary classifier's loss to the total with weight 0.3.
GOOGLENET_AUX_WEIGHT = 0.3

# What GoogLeNet returns in training mode with its auxiliary heads (torchvision's field names):
# the main logits, then the head on inception4d ("aux_logits2"), then the one on inception4a.
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


def conv_bn(
    in_chs: int,
    out_chs: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
) -> ConvBNAct:
    """Conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU, unpadded unless told: the keys of
    torchvision's ``BasicConv2d`` and timm's ``ConvNormAct`` (``conv``, ``bn``)."""
    return ConvBNAct(in_chs, out_chs, kernel_size, stride, padding, eps=1e-3)


def refuse_aux_logits(model: str, aux_logits: bool) -> None:
    """``aux_logits`` is accepted by every model of the family; only GoogLeNet and Inception v3
    have auxiliary heads, the others take ``aux_logits=False`` and refuse ``True``."""
    if aux_logits:
        raise ModelArgumentError(
            f"{model} has no auxiliary classifiers (googlenet and inception_v3 do), "
            f"got aux_logits={aux_logits!r}"
        )


class NaiveInception(nn.Module):
    """The naive Inception module: 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool, concatenated.

    All four branches see the full input depth, and the pool branch passes it through, so the
    output has ``ch1x1 + ch3x3 + ch5x5 + in_chs`` channels at the input's height and width.
    """

    def __init__(self, in_chs: int, ch1x1: int, ch3x3: int, ch5x5: int) -> None:
        super().__init__()
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + in_chs
        self.branch1 = conv_bn(in_chs, ch1x1, 1)
        self.branch2 = conv_bn(in_chs, ch3x3, 3, padding=1)
        self.branch3 = conv_bn(in_chs, ch5x5, 5, padding=2)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], 1)


class Inception(nn.Module):
    """The Inception module with dimension reductions (the paper's Figure 2b).

    Arguments follow the columns of the paper's Table 1: ``#1x1, #3x3 reduce, #3x3, #5x5 reduce,
    #5x5, pool proj``. ``kernel5`` is the kernel of the "5x5" branch: 5 by default, as in the
    paper; GoogLeNet passes 3 to stay torchvision's network (see ``GoogLeNet``).
    """

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        kernel5: int = 5,
    ) -> None:
        super().__init__()
        if kernel5 not in (3, 5):
            raise ModelArgumentError(
                f"kernel5 must be 3 (torchvision) or 5 (the paper), got {kernel5}"
            )
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = conv_bn(in_chs, ch1x1, 1)
        self.branch2 = nn.Sequential(
            conv_bn(in_chs, ch3x3red, 1), conv_bn(ch3x3red, ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            conv_bn(in_chs, ch5x5red, 1), conv_bn(ch5x5red, ch5x5, kernel5, padding=kernel5 // 2)
        )
        # ceil_mode as torchvision: no effect at stride 1, kept so the module is the same.
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv_bn(in_chs, pool_proj, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], 1)


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary classifier, on the 14x14 maps of inception4a and inception4d.

    The paper's 5x5/3 average pool (14x14 -> 4x4) is an adaptive pool to 4x4 here, as in
    torchvision, so other input sizes work; then 1x1 conv to 128, FC 2048 -> 1024, ReLU, dropout
    0.7, and the class logits.
    """

    def __init__(self, in_chs: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = conv_bn(in_chs, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))  # N x 128 x 4 x 4
        x = self.dropout(self.act(self.fc1(torch.flatten(x, 1))))  # N x 1024
        return self.fc2(x)  # N x num_classes


def to_inception_range(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``transform_input``: ImageNet-normalised RGB -> the [-1, 1] scaling.

    torchvision's GoogLeNet and Inception v3 weights expect ``(pixel - 0.5) / 0.5``; this maps
    ``(pixel - mean) / std`` inputs, the usual ImageNet normalisation, to that.
    """
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    # Scale and shift computed in Python floats, as torchvision does, so the float32 results
    # are bit for bit the same.
    scale = x.new_tensor([s / 0.5 for s in std]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in mean]).view(1, 3, 1, 1)
    return x * scale + shift


class GoogLeNet(ZooModel):
    """GoogLeNet, 22 layers with weights, as torchvision builds it (6,624,904 parameters without
    the auxiliary heads, 13,004,888 with them, for 1000 classes).

    Forward returns the logits, except in training mode with ``aux_logits=True`` where it returns
    ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` (a namedtuple, as torchvision): train
    on ``loss(logits) + GOOGLENET_AUX_WEIGHT * (loss(aux_logits1) + loss(aux_logits2))``. The aux
    heads are built only when there are classes (``num_classes > 0``).

    Departures from the paper, all torchvision's, kept so its weight files load and give the same
    outputs: batch norm after every convolution and no local response normalisation; the "5x5"
    branch of each Inception module is a 3x3 convolution (torchvision's long-standing slip,
    pytorch/vision#906; ``kernel5=5`` builds the paper's 5x5, 7,005,832 parameters); maxpool4
    is 2x2/2 (the paper's Table 1: 3x3/2, the same 7x7 output); dropout 0.2 before the
    classifier (the paper: 0.4); adaptive pools in the aux heads. ``transform_input``
    is torchvision's: off by default; turn it on to use torchvision's IMAGENET1K_V1 weights
    (torchvision does so itself when it loads them), which expect inputs scaled to [-1, 1].
    """

    aux_loss_weight = GOOGLENET_AUX_WEIGHT

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
        kernel5: int = 3,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("dropout", dropout)
        check_rate("dropout_aux", dropout_aux)
        if transform_input and in_chans != 3:
            raise ModelArgumentError(
                f"transform_input needs RGB input (in_chans=3), got {in_chans}"
            )
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 1024
        self.transform_input = transform_input
        inception = partial(Inception, kernel5=kernel5)

        self.conv1 = conv_bn(in_chans, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv_bn(64, 64, 1)
        self.conv3 = conv_bn(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        # in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj (the paper's Table 1)
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)

        has_aux = aux_logits and num_classes > 0
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if has_aux else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if has_aux else None

        self.global_pool = GlobalPool("avg")
        self.dropout = nn.Dropout(dropout)
        self.fc = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights()

    @property
    def aux_logits(self) -> bool:
        """Whether the auxiliary heads exist (they run only in training mode)."""
        return self.aux1 is not None

    def init_weights(self) -> None:
        # He init for the convolutions (the lecture's recipe; BN follows each one), N(0, 0.01)
        # for the FC layers; torchvision uses a truncated N(0, 0.01) for both.
        he_init_(self)

    def _stages(
        self, x: torch.Tensor, with_aux: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The convolutional part; also the aux heads' logits when ``with_aux``."""
        if self.transform_input:
            x = to_inception_range(x)
        # N x 3 x 224 x 224
        x = self.maxpool1(self.conv1(x))  # N x 64 x 56 x 56 (conv1: 112 x 112)
        x = self.conv3(self.conv2(x))  # N x 192 x 56 x 56
        x = self.maxpool2(x)  # N x 192 x 28 x 28
        x = self.inception3a(x)  # N x 256 x 28 x 28
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)  # N x 512 x 14 x 14
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4b(x)  # N x 512 x 14 x 14
        x = self.inception4c(x)  # N x 512 x 14 x 14
        x = self.inception4d(x)  # N x 528 x 14 x 14
        aux2 = self.aux2(x) if with_aux else None
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5a(x)  # N x 832 x 7 x 7
        x = self.inception5b(x)  # N x 1024 x 7 x 7
        return x, aux2, aux1

    def feature_points(self) -> list[tuple[str, int]]:
        """conv1 (stride 2), conv3 (4), and the last Inception module of each grid (8, 16, 32)."""
        return [
            ("conv1", 2),
            ("conv3", 4),
            ("inception3b", 8),
            ("inception4e", 16),
            ("inception5b", 32),
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._stages(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))  # N x 1024
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if self.features_only is not None:
            return super().forward(x)
        check_input(self, x)
        with_aux = self.training and self.aux_logits
        try:
            feats, aux2, aux1 = self._stages(x, with_aux)
            logits = self.forward_head(feats)
        except RuntimeError as err:
            raise_if_too_small(self, x, err)
            raise
        return GoogLeNetOutputs(logits, aux2, aux1) if with_aux else logits

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A torchvision state_dict for this model: without aux heads here, theirs are dropped
        (torchvision's weight file carries them; torchvision drops them too)."""
        if self.aux_logits:
            return state_dict
        return {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New main classifier; the aux heads get new last layers (or go, for 0 classes)."""
        super().reset_classifier(num_classes, global_pool)
        if self.aux1 is not None and num_classes:
            ref = self.aux1.fc2.weight
            for aux in (self.aux1, self.aux2):
                aux.fc2 = nn.Linear(1024, num_classes, device=ref.device, dtype=ref.dtype)
        elif not num_classes:
            self.aux1 = self.aux2 = None


@register_model
def googlenet(**kwargs) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2014, Going deeper with convolutions); 6.6M without aux heads."""
    return GoogLeNet(**kwargs)
