"""Preprocessing and augmentation on whole uint8 batches.

Datasets keep their images as uint8 tensors at the source size; these functions turn a batch into
what a model wants: its channel count (grayscale <-> RGB), its spatial size (zero-padding, as
LeNet-5 did for 28x28 digits, or a resize), then augmentation, then normalisation. The same
``preprocess`` dict drives training, evaluation and ``predict`` and is stored in checkpoints:

``{"input_size": [C, H, W], "source_size": [H0, W0], "spatial": "none"|"pad"|"resize"|"crop",
"mean": [...], "std": [...]}``, with ``"interpolation": "bicubic"`` (the resize filter; bilinear
when absent) and ``"crop_pct"`` for weights whose ``pretrained_cfg`` says so.

torchvision.transforms.v2's random transforms draw one set of parameters per call (one crop for a
whole batch), so the per-image random crop and flip here are written with tensor indexing instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _tf():
    """torchvision.transforms.v2.functional, imported on first use: it takes about a second,
    which every ``cnnzoo`` command (``--help`` included) would otherwise pay."""
    from torchvision.transforms.v2 import functional

    return functional


# each augmentation's steps, applied in this order; basic = random crop with padding + flip
AUGMENT_STEPS = {
    "none": (),
    "crop": ("crop",),
    "flip": ("flip",),
    "basic": ("crop", "flip"),
    "basic+erase": ("crop", "flip", "erase"),
}
AUGMENTS = tuple(AUGMENT_STEPS)
ERASE_P, ERASE_AREA, ERASE_RATIO = 0.5, (0.02, 0.4), (0.3, 1 / 0.3)  # Zhong et al. 2017, 3.1
PAD_LIMIT = 8  # a target at most this many pixels larger than the source is zero-padded
# resize filters (torchvision's InterpolationMode values; timm's pretrained_cfg "interpolation")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def resize_filter(preprocess: dict) -> str:
    """The resize filter a preprocess dict asks for: its ``interpolation`` (the pretrained
    weights', timm's key), bilinear when it names none."""
    return str(preprocess.get("interpolation") or "bilinear")


def spatial_mode(source_hw: tuple[int, int], target_hw: tuple[int, int]) -> str:
    """How a source size reaches the target: as is, by centred zero-padding, or by a resize."""
    (h0, w0), (h, w) = source_hw, target_hw
    if (h0, w0) == (h, w):
        return "none"
    if 0 <= h - h0 <= PAD_LIMIT and 0 <= w - w0 <= PAD_LIMIT:
        return "pad"
    return "resize"


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale to RGB by repetition, RGB to grayscale by ITU-R 601 luma (works on uint8)."""
    have = x.shape[-3]
    if have == channels:
        return x
    if have == 1:
        return x.expand(*x.shape[:-3], channels, *x.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        return _tf().rgb_to_grayscale(x, num_output_channels=1)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def to_model_space(x: torch.Tensor, preprocess: dict) -> torch.Tensor:
    """uint8 N x C0 x H0 x W0 -> float N x C x H x W in [0, 1], before normalisation."""
    c, h, w = preprocess["input_size"]
    x = convert_channels(x, c)
    x = _tf().to_dtype(x, torch.float32, scale=True)
    mode = preprocess.get("spatial", spatial_mode(tuple(x.shape[-2:]), (h, w)))
    if tuple(x.shape[-2:]) == (h, w):
        return x
    if mode == "pad":
        dh, dw = h - x.shape[-2], w - x.shape[-1]
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
    if mode == "crop":  # pretrained weights' eval transform: H / crop_pct, then the centre H
        return _tf().center_crop(x, [h, w])
    from torchvision.transforms import InterpolationMode

    mode = InterpolationMode(resize_filter(preprocess))
    return _tf().resize(x, [h, w], interpolation=mode, antialias=True)


def normalize(x: torch.Tensor, preprocess: dict) -> torch.Tensor:
    return _tf().normalize(x, preprocess["mean"], preprocess["std"])


def augment_batch(
    x: torch.Tensor, augment: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop with zero padding (pad = size/8, 4 pixels at 32x32) and/or horizontal flip,
    drawn independently for every image of the float batch ``x`` (values in [0, 1]);
    ``basic+erase`` then applies :func:`random_erase`."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")
    steps = AUGMENT_STEPS[augment]
    n, _, h, w = x.shape
    if "crop" in steps:
        pad = max(1, min(h, w) // 8)
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)).to(x.device)  # n x h
        cols = (dx[:, None] + torch.arange(w)).to(x.device)  # n x w
        batch = torch.arange(n, device=x.device)[:, None, None]
        # padded[b, :, rows[b, i], cols[b, j]] for every b, i, j
        x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 3, 1, 2).contiguous()
    if "flip" in steps:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if "erase" in steps:
        x = random_erase(x, generator=generator)
    return x


def random_erase(
    x: torch.Tensor,
    p: float = ERASE_P,
    area: tuple[float, float] = ERASE_AREA,
    ratio: tuple[float, float] = ERASE_RATIO,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random erasing (Zhong et al., 2017): with probability ``p`` each image of ``x`` gets one
    rectangle of ``area`` (a fraction of the image, uniform) and aspect ratio ``ratio``
    (log-uniform) filled with uniform noise in [0, 1]. The paper redraws a rectangle that does not
    fit; here its sides are clipped to the image instead, so every draw is one batched step."""
    n, _, h, w = x.shape
    s = torch.empty(n).uniform_(*area, generator=generator) * h * w
    r = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    eh = (s * r).sqrt().round().clamp(1, h).long()
    ew = (s / r).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    chosen = torch.rand(n, generator=generator) < p
    rows = torch.arange(h)[None, :]
    cols = torch.arange(w)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # n x h
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # n x w
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]).to(x.device)
    noise = torch.rand(x.shape, generator=generator).to(x.device, x.dtype)
    return torch.where(mask[:, None], noise, x)


def make_preprocess(
    input_size: tuple[int, int, int],
    source_size: tuple[int, int],
    mean: list[float],
    std: list[float],
    **extra,
) -> dict:
    """The preprocess dict of the module doc; ``mean``/``std`` may be given for 1 or C channels."""
    c, h, w = (int(v) for v in input_size)
    if len(mean) == 1 and c > 1:
        mean, std = list(mean) * c, list(std) * c
    elif len(mean) == 3 and c == 1:  # same luma weights as convert_channels
        mean = [0.299 * mean[0] + 0.587 * mean[1] + 0.114 * mean[2]]
        std = [(0.299 * std[0] ** 2 + 0.587 * std[1] ** 2 + 0.114 * std[2] ** 2) ** 0.5]
    return {
        "input_size": [c, h, w],
        "source_size": [int(source_size[0]), int(source_size[1])],
        "spatial": spatial_mode(tuple(source_size), (h, w)),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        **extra,
    }
