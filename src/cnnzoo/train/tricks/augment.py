"""Augmentation on the batch, on the batch's device: derandomised flips and reflect translations.

airbench's two training augmentations:

- ``flip-alt``: every image is mirrored on alternate epochs, starting mirrored or not at random
  (per image, fixed by the seed). Over any two consecutive epochs each image is seen once each
  way, where independent coin flips show a quarter of the images the same way twice.
- ``translate``: the image reflect-padded by 2 pixels and cropped back at a random offset per
  image (``translate:N`` for N pixels).
- ``flip``: the ordinary random mirror, per image and batch (for comparison).

``BatchAugment`` needs each image's index in the training set (what makes an alternating flip per
image possible); ``DeviceBatches`` is a loader that keeps a ``TensorImageDataset``'s uint8 images
on the device, preprocesses and augments each batch there, and yields ``(images, labels)`` like
``cnnzoo.data.make_loader``'s loaders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ...data.transforms import normalize, to_model_space
from ...errors import CnnzooError

TRANSLATE_PAD = 2  # airbench's translation, in pixels
AUGMENT_TOKENS = ("flip-alt", "flip", "translate")


def parse_augment(spec: str) -> dict:
    """``"flip-alt+translate"`` -> ``{"flip": "alternate", "translate": 2}``. Tokens joined by
    ``+`` or ``,``: ``flip-alt``, ``flip``, ``translate`` or ``translate:N``; ``none`` or "" is
    nothing."""
    out: dict = {"flip": None, "translate": 0}
    tokens = [t.strip() for t in re.split(r"[+,]", spec)]
    for token in [t for t in tokens if t and t != "none"]:
        name, _, arg = token.partition(":")
        if name in ("flip", "flip-alt") and not arg:
            if out["flip"] is not None:
                raise CnnzooError(f"augment {spec!r}: give one of flip and flip-alt")
            out["flip"] = "alternate" if name == "flip-alt" else "random"
        elif name == "translate":
            try:
                pad = int(arg) if arg else TRANSLATE_PAD
            except ValueError:
                pad = -1
            if pad < 1:
                raise CnnzooError(f"augment {spec!r}: translate:N needs N >= 1 pixels, got {arg!r}")
            out["translate"] = pad
        else:
            raise CnnzooError(
                f"unknown augmentation {token!r} in {spec!r}; use {', '.join(AUGMENT_TOKENS)} "
                f"(translate:N for N pixels) joined by '+' or ',', e.g. flip-alt+translate"
            )
    return out


def flip_start(index: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A fixed pseudo-random bit per image index (bool, on ``index``'s device): whether the image
    is mirrored in even epochs. An integer hash (two multiply-xorshift rounds on 32 bits), so no
    table of the dataset's size is needed and any device computes the same bits."""
    h = (index.long() ^ ((seed * 0x9E3779B1) & 0xFFFFFFFF)) & 0xFFFFFFFF
    for _ in range(2):
        h = (((h >> 16) ^ h) * 0x45D9F3B) & 0xFFFFFFFF
    h = (h >> 16) ^ h
    return (h & 1).bool()


def alternating_flip(
    x: torch.Tensor, index: torch.Tensor, epoch: int, seed: int = 0
) -> torch.Tensor:
    """Mirror image ``i`` of the batch when ``flip_start(index[i], seed)`` differs from the
    epoch's parity: each image alternates between the two views from one epoch to the next."""
    flip = flip_start(index.to(x.device), seed) ^ bool(epoch % 2)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image with probability 1/2 (independently per image and call)."""
    flip = _draw(lambda **kw: torch.rand(len(x), **kw) < 0.5, x, generator)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_translate(
    x: torch.Tensor, pad: int = TRANSLATE_PAD, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each image reflect-padded by ``pad`` and cropped back to its size at a random offset in
    [0, 2 * pad] per axis (a shift of -pad..pad pixels), in two gathers on ``x``'s device."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = _draw(lambda **kw: torch.randint(0, 2 * pad + 1, (n,), **kw), x, generator)
    dx = _draw(lambda **kw: torch.randint(0, 2 * pad + 1, (n,), **kw), x, generator)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # n x h
    cols = dx[:, None] + torch.arange(w, device=x.device)  # n x w
    x = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    return x.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def _draw(fn, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``fn(device=..., generator=...)`` on the generator's device (a seeded CPU generator works
    for a CUDA batch: only the n draws cross), moved to ``x``'s device."""
    device = generator.device if generator is not None else x.device
    return fn(device=device, generator=generator).to(x.device)


class BatchAugment:
    """The augmentations of ``spec`` (see ``parse_augment``) applied to a float batch.

    ``aug(x, index, epoch, generator)``: ``index`` holds each image's position in the training
    set (needed by ``flip-alt`` only), ``generator`` drives the random parts. Translation comes
    before the flip, so a mirrored image is translated as often as any other."""

    def __init__(self, spec: str = "flip-alt+translate", seed: int = 0) -> None:
        self.spec, self.seed = spec, seed
        parsed = parse_augment(spec)
        self.flip, self.translate = parsed["flip"], parsed["translate"]

    def __call__(
        self,
        x: torch.Tensor,
        index: torch.Tensor | None,
        epoch: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if self.translate:
            x = random_translate(x, self.translate, generator)
        if self.flip == "alternate":
            if index is None:
                raise ValueError("flip-alt needs each image's dataset index, got index=None")
            x = alternating_flip(x, index, epoch, self.seed)
        elif self.flip == "random":
            x = random_flip(x, generator)
        return x

    def __repr__(self) -> str:
        return f"BatchAugment({self.spec!r}, seed={self.seed})"


class DeviceBatches:
    """Shuffled training batches of a ``TensorImageDataset`` whose uint8 images sit on ``device``.

    Each batch is gathered, preprocessed (``to_model_space``, then ``augment``, then
    ``normalize``) and augmented on the device; the order is ``randperm`` seeded with
    ``seed + epoch`` (as ``BatchLoader``), the random augmentation draws from a CPU generator
    seeded from ``(seed, epoch, rank)``, so a resumed epoch repeats. ``set_epoch(epoch)`` before
    each epoch, as with the other loaders. Under several processes each reads every
    ``world_size``-th image of the permutation (padded to equal shards).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        device: torch.device | str,
        augment: BatchAugment | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.preprocess = dataset.preprocess
        self.batch_size, self.augment, self.seed = batch_size, augment, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        n = len(self.images)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        if self.world_size > 1:
            per_rank = math.ceil(n / self.world_size)
            order = torch.cat([order, order[: per_rank * self.world_size - n]])
            order = order[self.rank :: self.world_size]
        return order.to(self.device)

    def __len__(self) -> int:
        n = math.ceil(len(self.images) / self.world_size)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        g = torch.Generator().manual_seed(
            (self.seed + 1) * 1_000_003 + self.epoch * 7919 + self.rank
        )
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = to_model_space(self.images[idx], self.preprocess)
            if self.augment is not None:
                x = self.augment(x, idx, self.epoch, g)
            yield normalize(x, self.preprocess), self.labels[idx]
