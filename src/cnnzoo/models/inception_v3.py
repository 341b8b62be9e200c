"""Inception v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision").

Factorised convolutions: a 5x5 becomes two 3x3 (``InceptionA``, the paper's Figure 5), an nxn
becomes 1xn then nx1 (``InceptionC``, Figure 6, n = 7 on the 17x17 grid), and the 8x8 modules
split their 3x3 into parallel 1x3 and 3x1 (``InceptionE``, Figure 7); grid reductions run a
stride-2 convolution and a stride-2 pool side by side (``InceptionB`` 35->17, ``InceptionD``
17->8, Figure 10). Class and attribute names are torchvision's ``Inception3``, key for key.
"""

from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn

from ..errors import InputTooSmallError, ModelArgumentError
from ..registry import register_model
from ._base import ZooModel, check_input, raise_if_too_small
from .googlenet import conv_bn, to_inception_range
from .layers import GlobalPool, check_count, check_rate, he_init_

# Weight of the auxiliary head's loss: the paper gives none; 0.4 is TF-slim's (the paper's
# authors' reference implementation, train_image_classifier.py).
INCEPTION_V3_AUX_WEIGHT = 0.4

# What Inception v3 returns in training mode with its auxiliary head (torchvision's names).
InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])


class InceptionA(nn.Module):
    """35x35 module (Figure 5): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1.

    torchvision and TF-slim keep one 5x5 branch beside the factorised double 3x3.
    Output depth ``64 + 64 + 96 + pool_features``.
    """

    def __init__(self, in_chs: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = conv_bn(in_chs, 64, 1)
        self.branch5x5_1 = conv_bn(in_chs, 48, 1)
        self.branch5x5_2 = conv_bn(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = conv_bn(in_chs, 64, 1)
        self.branch3x3dbl_2 = conv_bn(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv_bn(96, 96, 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = conv_bn(in_chs, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b2 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        b4 = self.branch_pool(self.pool(x))
        return torch.cat((b1, b2, b3, b4), 1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2. Depth ``in + 480``."""

    def __init__(self, in_chs: int) -> None:
        super().__init__()
        self.branch3x3 = conv_bn(in_chs, 384, 3, stride=2)
        self.branch3x3dbl_1 = conv_bn(in_chs, 64, 1)
        self.branch3x3dbl_2 = conv_bn(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv_bn(96, 96, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch3x3(x)
        b2 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat((b1, b2, self.pool(x)), 1)


class InceptionC(nn.Module):
    """17x17 module (Figure 6, n = 7): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1.

    ``channels_7x7`` is the width inside the factorised branches; output depth 768.
    """

    def __init__(self, in_chs: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = conv_bn(in_chs, 192, 1)
        self.branch7x7_1 = conv_bn(in_chs, c7, 1)
        self.branch7x7_2 = conv_bn(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = conv_bn(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = conv_bn(in_chs, c7, 1)
        self.branch7x7dbl_2 = conv_bn(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = conv_bn(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = conv_bn(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = conv_bn(c7, 192, (1, 7), padding=(0, 3))
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = conv_bn(in_chs, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b2 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b3 = self.branch7x7dbl_1(x)
        b3 = self.branch7x7dbl_3(self.branch7x7dbl_2(b3))
        b3 = self.branch7x7dbl_5(self.branch7x7dbl_4(b3))
        b4 = self.branch_pool(self.pool(x))
        return torch.cat((b1, b2, b3, b4), 1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2. Depth ``in+512``."""

    def __init__(self, in_chs: int) -> None:
        super().__init__()
        self.branch3x3_1 = conv_bn(in_chs, 192, 1)
        self.branch3x3_2 = conv_bn(192, 320, 3, stride=2)
        self.branch7x7x3_1 = conv_bn(in_chs, 192, 1)
        self.branch7x7x3_2 = conv_bn(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = conv_bn(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = conv_bn(192, 192, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch3x3_2(self.branch3x3_1(x))
        b2 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b2 = self.branch7x7x3_4(self.branch7x7x3_3(b2))
        return torch.cat((b1, b2, self.pool(x)), 1)


class InceptionE(nn.Module):
    """8x8 module (Figure 7): 1x1 | 1x1-(1x3 and 3x1) | 1x1-3x3-(1x3 and 3x1) | avgpool-1x1.

    The expanded filter banks of the coarsest grid; output depth 320 + 768 + 768 + 192 = 2048.
    """

    def __init__(self, in_chs: int) -> None:
        super().__init__()
        self.branch1x1 = conv_bn(in_chs, 320, 1)
        self.branch3x3_1 = conv_bn(in_chs, 384, 1)
        self.branch3x3_2a = conv_bn(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = conv_bn(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = conv_bn(in_chs, 448, 1)
        self.branch3x3dbl_2 = conv_bn(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = conv_bn(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = conv_bn(384, 384, (3, 1), padding=(1, 0))
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = conv_bn(in_chs, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b2 = self.branch3x3_1(x)
        b2 = torch.cat((self.branch3x3_2a(b2), self.branch3x3_2b(b2)), 1)
        b3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3 = torch.cat((self.branch3x3dbl_3a(b3), self.branch3x3dbl_3b(b3)), 1)
        b4 = self.branch_pool(self.pool(x))
        return torch.cat((b1, b2, b3, b4), 1)


class InceptionAux(nn.Module):
    """The auxiliary head on the 17x17 grid, with batch norm (the paper's "BN-auxiliary").

    avgpool 5x5/3 (17x17 -> 5x5), 1x1 conv 128, 5x5 conv 768 (-> 1x1), FC. The 5x5 stages need
    a 17x17 grid, i.e. a 299x299 input: in training mode the aux head refuses smaller inputs.
    """

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = conv_bn(in_chs, 128, 1)
        self.conv1 = conv_bn(128, 768, 5)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))  # N x 768 x 1 x 1
        return self.fc(torch.flatten(self.avgpool(x), 1))  # N x num_classes


class InceptionV3(ZooModel):
    """Inception v3 on 299x299 images, torchvision's ``Inception3`` key for key (27,161,264
    parameters with the aux head, 23,834,568 without, for 1000 classes).

    Forward returns the logits, except in training mode with ``aux_logits=True`` where it returns
    ``InceptionOutputs(logits, aux_logits)``; train on ``loss(logits) + INCEPTION_V3_AUX_WEIGHT *
    loss(aux_logits)``. The aux head needs the full 299x299 input (see ``InceptionAux``); without
    it the network accepts inputs down to 75x75. ``transform_input`` as in ``GoogLeNet``.
    Departure from the paper: the first 35x35 modules keep a 5x5 branch (as TF-slim, whose
    weights torchvision ported).
    """

    aux_loss_weight = INCEPTION_V3_AUX_WEIGHT

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.5,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_rate("dropout", dropout)
        if transform_input and in_chans != 3:
            raise ModelArgumentError(
                f"transform_input needs RGB input (in_chans=3), got {in_chans}"
            )
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 2048
        self.transform_input = transform_input
        # The stem, TF-slim's: the paper's Table 1 has 3x3 convolutions where 3b is a 1x1 to 80
        # and where maxpool1 and maxpool2 are; unpadded except 2b.
        self.Conv2d_1a_3x3 = conv_bn(in_chans, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = conv_bn(32, 32, 3)
        self.Conv2d_2b_3x3 = conv_bn(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = conv_bn(64, 80, 1)
        self.Conv2d_4a_3x3 = conv_bn(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        has_aux = aux_logits and num_classes > 0
        self.AuxLogits = InceptionAux(768, num_classes) if has_aux else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.global_pool = GlobalPool("avg")
        self.dropout = nn.Dropout(dropout)
        self.fc = self.new_head(num_classes)
        if global_pool != "avg":
            self._set_global_pool(global_pool, num_classes)
        self.init_weights()

    @property
    def aux_logits(self) -> bool:
        """Whether the auxiliary head exists (it runs only in training mode)."""
        return self.AuxLogits is not None

    def init_weights(self) -> None:
        # He init for the convolutions (each is followed by BN), N(0, 0.01) for the FC layers;
        # torchvision draws everything from a truncated N(0, 0.1).
        he_init_(self)

    def _stages(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x_in = x
        if self.transform_input:
            x = to_inception_range(x)
        # N x 3 x 299 x 299
        x = self.Conv2d_1a_3x3(x)  # N x 32 x 149 x 149
        x = self.Conv2d_2a_3x3(x)  # N x 32 x 147 x 147
        x = self.Conv2d_2b_3x3(x)  # N x 64 x 147 x 147
        x = self.maxpool1(x)  # N x 64 x 73 x 73
        x = self.Conv2d_3b_1x1(x)  # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)  # N x 192 x 71 x 71
        x = self.maxpool2(x)  # N x 192 x 35 x 35
        x = self.Mixed_5b(x)  # N x 256 x 35 x 35
        x = self.Mixed_5c(x)  # N x 288 x 35 x 35
        x = self.Mixed_5d(x)  # N x 288 x 35 x 35
        x = self.Mixed_6a(x)  # N x 768 x 17 x 17
        x = self.Mixed_6b(x)  # N x 768 x 17 x 17
        x = self.Mixed_6c(x)  # N x 768 x 17 x 17
        x = self.Mixed_6d(x)  # N x 768 x 17 x 17
        x = self.Mixed_6e(x)  # N x 768 x 17 x 17
        aux = None
        if with_aux:
            if min(x.shape[-2:]) < 17:  # the head's 5x5/3 pool and 5x5 conv need 17x17
                raise InputTooSmallError(
                    f"input {x_in.shape[-2]}x{x_in.shape[-1]} is too small for InceptionV3's "
                    f"auxiliary head (training mode): Mixed_6e gives it {x.shape[-2]}x"
                    f"{x.shape[-1]}, it needs 17x17; use 299x299 inputs, or aux_logits=False"
                )
            aux = self.AuxLogits(x)
        x = self.Mixed_7a(x)  # N x 1280 x 8 x 8
        x = self.Mixed_7b(x)  # N x 2048 x 8 x 8
        x = self.Mixed_7c(x)  # N x 2048 x 8 x 8
        return x, aux

    def feature_points(self) -> list[tuple[str, int]]:
        """timm's: the stem's Conv2d_2b (stride 2) and Conv2d_4a (4), then the last module of
        each grid, Mixed_5d (8), Mixed_6e (16), Mixed_7c (32)."""
        return [
            ("Conv2d_2b_3x3", 2),
            ("Conv2d_4a_3x3", 4),
            ("Mixed_5d", 8),
            ("Mixed_6e", 16),
            ("Mixed_7c", 32),
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._stages(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))  # N x 2048
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | InceptionOutputs:
        if self.features_only is not None:
            return super().forward(x)
        check_input(self, x)
        with_aux = self.training and self.aux_logits
        try:
            feats, aux = self._stages(x, with_aux)
            logits = self.forward_head(feats)
        except RuntimeError as err:
            raise_if_too_small(self, x, err)
            raise
        return InceptionOutputs(logits, aux) if with_aux else logits

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A torchvision/timm state_dict for this model: without an aux head here, its
        ``AuxLogits`` weights are dropped (torchvision's weight file carries them)."""
        if self.aux_logits:
            return state_dict
        return {k: v for k, v in state_dict.items() if not k.startswith("AuxLogits.")}

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New main classifier; the aux head gets a new last layer (or goes, for 0 classes)."""
        super().reset_classifier(num_classes, global_pool)
        if self.AuxLogits is not None and num_classes:
            ref = self.AuxLogits.fc.weight
            self.AuxLogits.fc = nn.Linear(768, num_classes, device=ref.device, dtype=ref.dtype)
        elif not num_classes:
            self.AuxLogits = None


@register_model(input_size=(3, 299, 299))
def inception_v3(**kwargs) -> InceptionV3:
    """Inception v3 (Szegedy et al. 2015, Rethinking the Inception...); 23.8M without aux head."""
    return InceptionV3(**kwargs)
