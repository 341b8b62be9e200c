"""In-memory image datasets and the batch loader that feeds them to training.

A ``TensorImageDataset`` holds uint8 images and int64 labels; indexing it gives one normalised float
image as a torch ``Dataset`` should, and ``get_batch`` preprocesses a whole batch at once, which is
what ``make_loader`` uses: no per-image Python work, no worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .transforms import augment_batch, normalize, to_model_space


class TensorImageDataset(Dataset):
    """uint8 images (N x C0 x H0 x W0) and labels, preprocessed on access by ``preprocess``."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        preprocess: dict,
        augment: str = "none",
        name: str = "",
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 N x C x H x W, got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()
        self.preprocess, self.augment, self.name = preprocess, augment, name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.get_batch([index])
        return x[0], int(y[0])

    def get_batch(
        self, indices: Sequence[int] | torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``indices`` as a normalised float batch (augmented if this split augments)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = to_model_space(self.images[idx], self.preprocess)
        if self.augment != "none":
            x = augment_batch(x, self.augment, generator)
        return normalize(x, self.preprocess), self.labels[idx]

    def subset(self, indices: torch.Tensor, augment: str | None = None) -> TensorImageDataset:
        """A dataset of the chosen images (a copy), e.g. a validation split."""
        return TensorImageDataset(
            self.images[indices],
            self.labels[indices],
            self.preprocess,
            self.augment if augment is None else augment,
            self.name,
        )


class BatchLoader:
    """Batches of a dataset that has ``get_batch``: shuffled per epoch with ``seed + epoch``
    (as DistributedSampler does, so a resumed run sees the same order) and sharded across ranks."""

    def __init__(
        self,
        dataset: TensorImageDataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.seed, self.rank, self.world_size, self.drop_last = seed, rank, world_size, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.world_size > 1:  # pad to a multiple of the world size, then take every k-th
            per_rank = math.ceil(n / self.world_size)
            order = torch.cat([order, order[: per_rank * self.world_size - n]])
            order = order[self.rank :: self.world_size]
        return order

    def __len__(self) -> int:
        n = math.ceil(len(self.dataset) / self.world_size)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._indices()
        # augmentation draws from its own generator so that it, too, repeats on resume
        g = torch.Generator().manual_seed(
            (self.seed + 1) * 1_000_003 + self.epoch * 7919 + self.rank
        )
        for b in range(len(self)):
            yield self.dataset.get_batch(order[b * self.batch_size : (b + 1) * self.batch_size], g)


class SamplerLoader:
    """A torch DataLoader over any map-style dataset, with ``set_epoch`` like ``BatchLoader``.

    It draws its workers' seeds from its own generator, re-seeded each epoch, not from torch's
    global one: iterating it leaves the model's random stream (dropout) alone, and a resumed run
    gives worker-side random transforms the same seeds.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
        num_workers: int,
    ) -> None:
        self.seed = seed
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(
            dataset,
            batch_size,
            sampler=self.sampler,
            drop_last=drop_last,
            num_workers=num_workers,
            generator=self.generator,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.generator.manual_seed((self.seed + 1) * 1_000_003 + epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    num_workers: int = 0,
) -> BatchLoader | SamplerLoader:
    """An iterable of ``(images, labels)`` batches with ``set_epoch(epoch)``.

    Datasets with ``get_batch`` (all of cnnzoo's) are batched in one tensor operation; any other
    map-style dataset goes through a torch DataLoader with a DistributedSampler (also when there is
    a single process: it is then a seeded shuffle).
    """
    if len(dataset) == 0:
        raise ValueError("cannot make a loader over an empty dataset")
    if hasattr(dataset, "get_batch"):
        return BatchLoader(dataset, batch_size, shuffle, seed, rank, world_size, drop_last)
    return SamplerLoader(
        dataset, batch_size, shuffle, seed, rank, world_size, drop_last, num_workers
    )
