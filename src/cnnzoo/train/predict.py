"""Prediction for image files with a checkpoint's own preprocessing and class names."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..data import load_image
from ..data.folder import warn_skipped
from ..errors import DataError
from ..paths import as_list
from .evaluate import main_output


def expand_images(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given (one path alone too); a directory stands for the files inside it
    (recursively, sorted)."""
    out: list[Path] = []
    for p in map(Path, as_list(paths)):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        else:
            out.append(p)
    return out


@torch.no_grad()
def predict(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    preprocess: dict,
    classes: Sequence[str] | None = None,
    topk: int = 5,
    device: torch.device | str | None = None,
    batch_size: int = 64,
    strict: bool = False,
) -> list[dict]:
    """Top-``topk`` classes of each image: ``[{"path", "top": [(class, probability), ...]}]``.

    An unreadable file is skipped with a ``DataWarning`` naming it (the first five; the rest are
    counted in one: ``warn_skipped``), or raises with ``strict``; when every file is unreadable,
    the error names the first and why."""
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images, kept, failed = [], [], []
    for path in expand_images(paths):
        try:
            images.append(load_image(path, preprocess))
        except DataError as err:
            if strict:
                raise
            failed.append(err)
            continue
        kept.append(path)
    if not images:
        first = f": {failed[0]}" if failed else ""
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise DataError(f"no readable images to predict{first}{more}")
    warn_skipped(failed, stacklevel=3)
    model.eval()
    results = []
    for start in range(0, len(images), batch_size):
        x = torch.stack(images[start : start + batch_size]).to(device)
        probs = main_output(model(x)).float().softmax(1).cpu()
        k = min(topk, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        for path, v, i in zip(kept[start : start + batch_size], values, indices, strict=True):
            names = [classes[j] if classes else str(j) for j in i.tolist()]
            results.append({"path": str(path), "top": list(zip(names, v.tolist(), strict=True))})
    return results


def predict_checkpoint(
    checkpoint: str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    topk: int = 5,
    device: torch.device | str = "auto",
    strict: bool = False,
    expect_model: str | None = None,
) -> list[dict]:
    """``predict`` with a checkpoint (or run directory) of its own preprocessing and classes."""
    from ..errors import CheckpointError
    from .assess import load_checkpoints
    from .distributed import resolve_device

    ((ckpt, model),) = load_checkpoints([checkpoint], expect_model)
    if ckpt.preprocess is None:
        raise CheckpointError(f"{checkpoint} has no preprocessing description; cannot predict")
    dev = resolve_device(device)
    model = model.to(dev)
    return predict(model, paths, ckpt.preprocess.to_dict(), ckpt.classes, topk, dev, strict=strict)
