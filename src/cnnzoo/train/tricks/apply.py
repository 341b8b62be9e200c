"""Where ``fit`` applies the speedrun fields of a ``TrainConfig`` (``init``, ``freeze_bn_scales``,
``bn_bias_lr_mult``, ``batch_augment``): to any model and any in-memory dataset, before the
optimiser is built. ``ema`` and ``test_tta`` are applied by the loop itself (``cnnzoo.train.loop``).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data.transforms import normalize, to_model_space
from ...errors import CnnzooError
from .augment import BatchAugment, DeviceBatches
from .bn import bn_param_groups, freeze_bn_scales_
from .init import dirac_init_, first_conv, whiten_first_conv_

WHITEN_IMAGES = 5000  # training images whose patches set the whitening layer (airbench's count)


def whitening_images(dataset, n: int, device: torch.device) -> torch.Tensor:
    """The first ``n`` training images as the model receives them, without augmentation: what
    the first layer's whitening statistics are taken from."""
    if hasattr(dataset, "images") and hasattr(dataset, "preprocess"):
        x = to_model_space(dataset.images[:n], dataset.preprocess)
        return normalize(x, dataset.preprocess).to(device)
    return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))]).to(device)


def prepare_model(model: nn.Module, dataset, config, fresh: bool, device: torch.device) -> None:
    """``config.init`` on a new run's weights (a resumed run keeps its own), then the freezing
    that both need: the whitening layer's filters and, with ``freeze_bn_scales``, the BN scales.
    Whitening comes before dirac, which leaves the frozen layer alone."""
    if "whiten" in config.init:
        if fresh:
            whiten_first_conv_(model, whitening_images(dataset, WHITEN_IMAGES, device))
        else:
            first_conv(model, whitening_images(dataset, 2, device))[1].weight.requires_grad_(False)
    if fresh and "dirac" in config.init:
        dirac_init_(model)
    if config.freeze_bn_scales:
        freeze_bn_scales_(model)


def trick_param_groups(model: nn.Module, config, param_groups, lr_mult) -> list[dict] | None:
    """``param_groups`` for ``build_optimizer``: the caller's, or with ``bn_bias_lr_mult`` the BN
    biases in a group of their own (its weight decay divided by the multiplier)."""
    if config.bn_bias_lr_mult == 1.0:
        return param_groups
    if param_groups is not None or lr_mult is not None:
        raise CnnzooError("bn_bias_lr_mult cannot be combined with param_groups or lr_mult")
    return bn_param_groups(model, config.bn_bias_lr_mult, config.weight_decay)


def device_batches(dataset, config, device: torch.device, rank: int, world: int) -> DeviceBatches:
    """The training loader of ``batch_augment``: the uint8 images on ``device``, each batch
    preprocessed and augmented there (the dataset's own ``augment`` is not applied)."""
    if not hasattr(dataset, "images"):
        raise CnnzooError(
            f"batch_augment {config.batch_augment!r} needs an in-memory dataset (Fashion-MNIST, "
            f"MNIST, CIFAR, digits, a small image folder); use --augment for this one"
        )
    augment = BatchAugment(config.batch_augment, seed=config.seed)
    return DeviceBatches(
        dataset, config.batch_size, device, augment, config.seed, rank, world, drop_last=world > 1
    )
