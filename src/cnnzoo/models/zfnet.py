"""ZFNet (Zeiler & Fergus 2013, Visualizing and Understanding Convolutional Networks): AlexNet with
a smaller, denser first layer and wider CONV3-5, as the lecture describes it."""

from __future__ import annotations

from ..registry import register_model
from .alexnet import AlexNet, ConvRow

# (filters, kernel, stride, padding, groups); "M" MAX POOL 3x3/2 (rounding up), "N" LRN.
# Sizes at 224x224 in the comments: the paper's architecture figure (Fig. 3; Fig. 2 in arXiv v1).
ZFNET_CFG: list[ConvRow | str] = [
    (96, 7, 2, 1, 1), "M", "N",  # CONV1 110x110x96, POOL1 55x55x96, NORM1
    (256, 5, 2, 0, 1), "M", "N",  # CONV2 26x26x256, POOL2 13x13x256, NORM2
    (512, 3, 1, 1, 1),  # CONV3 13x13x512
    (1024, 3, 1, 1, 1),  # CONV4 13x13x1024
    (512, 3, 1, 1, 1), "M",  # CONV5 13x13x512, POOL3 6x6x512
]  # fmt: skip


class ZFNet(AlexNet):
    """AlexNet's class with ZFNet's table and Caffe-style (rounding-up) pooling."""

    def __init__(self, **kwargs) -> None:
        super().__init__(ZFNET_CFG, ceil_mode=True, **kwargs)


@register_model(input_size=(3, 224, 224))
def zfnet(**kwargs) -> ZFNet:
    """ZFNet (Zeiler & Fergus 2013, Visualizing and Understanding Convolutional Networks).

    AlexNet but CONV1 96 7x7 stride 2 (instead of 11x11/4), CONV2 256 5x5 stride 2 (instead of
    stride 1), and CONV3/4/5 with 512/1024/512 filters (instead of 384/384/256), as in the
    lecture; FC6 4096, FC7 4096, FC8 1000, dropout 0.5: 107,627,624 parameters.

    The architecture figure gives the sizes 224 -> 110x110x96 -> 55x55x96 -> 26x26x256 ->
    13x13x256 -> 13x13 -> 6x6 but not the padding. Padding 1 on CONV1
    ((224 - 7 + 2) // 2 + 1 = 110), none on CONV2 ((55 - 5) // 2 + 1 = 26), 1 on CONV3-5, and
    pooling that rounds up as Caffe did (ceil((110 - 3) / 2) + 1 = 55, ceil((26 - 3) / 2) + 1 =
    13) reproduce all of them.
    That figure keeps AlexNet's 384/384/256 in CONV3-5; the 512/1024/512 widths are the
    wider variant of its Table 2 (layers 3, 4 and 5 grown to 512, 1024 and 512 maps), which the
    lecture quotes. The paper's "contrast normalisation" is the AlexNet LRN here, and the
    renormalisation of filters whose RMS exceeds 0.1 is a training rule, not part of the model.
    """
    return ZFNet(**kwargs)
