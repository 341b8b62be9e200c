"""The speedrun tricks (airbench, hlb-CIFAR10, Page's "How to train your ResNet") as library
pieces that any zoo model and the trainer can use. docs/training.md, "Speedrun options", says
how each will be exposed and where ``fit`` calls it.

- ``init``: ``whiten_first_conv_`` / ``whiten_conv_`` (patch-whitening first layer, frozen),
  ``dirac_init_`` / ``dirac_`` (identity convolutions);
- ``bn``: ``freeze_bn_scales_``, ``bn_param_groups`` (BN biases at 64x the rate);
- ``ema``: ``WeightEMA`` (weight averaging, or lookahead);
- ``augment``: ``BatchAugment`` (``flip-alt+translate``), ``DeviceBatches`` (a loader that keeps
  the images on the device);
- ``tta``: ``tta_views``, ``tta_logits``, ``parse_tta`` (``flip,translate``);
- ``schedule``: ``warmup_linear_factor``, ``WarmupLinear``.

All of it is device-agnostic tensor code: nothing in a per-batch path leaves the device.
"""

from .augment import (
    BatchAugment,
    DeviceBatches,
    alternating_flip,
    flip_start,
    parse_augment,
    random_flip,
    random_translate,
)
from .bn import BN_BIAS_LR_MULT, bn_modules, bn_param_groups, freeze_bn_scales_
from .ema import WeightEMA
from .init import (
    WHITEN_EPS,
    dirac_,
    dirac_init_,
    first_conv,
    patch_statistics,
    whiten_conv_,
    whiten_first_conv_,
    whitening_filters,
)
from .schedule import WarmupLinear, warmup_linear_factor
from .tta import TTA_NAMES, parse_tta, shift, tta_logits, tta_views

__all__ = [
    "BN_BIAS_LR_MULT",
    "BatchAugment",
    "DeviceBatches",
    "TTA_NAMES",
    "WHITEN_EPS",
    "WarmupLinear",
    "WeightEMA",
    "alternating_flip",
    "bn_modules",
    "bn_param_groups",
    "dirac_",
    "dirac_init_",
    "first_conv",
    "flip_start",
    "freeze_bn_scales_",
    "parse_augment",
    "parse_tta",
    "patch_statistics",
    "random_flip",
    "random_translate",
    "shift",
    "tta_logits",
    "tta_views",
    "warmup_linear_factor",
    "whiten_conv_",
    "whiten_first_conv_",
    "whitening_filters",
]
