"""Class-per-folder image trees (``root/<class>/*.jpg``), decoded once into memory.

Every image is decoded at load time, brought to the model's channels and to ``H x W`` (shorter side
resized to fit, then a centre crop, as torchvision's evaluation transforms do) and kept as uint8.
Decoding everything up front is what finds a corrupt file before training starts rather than in
the middle of epoch 3; it also suits the folder sizes one fine-tunes on (thousands of images).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from ..errors import DataError


class DataWarning(UserWarning):
    """A file of a dataset was skipped (corrupt, or not an image)."""


def open_image(path: str | Path, channels: int) -> torch.Tensor:
    """Decode an image file to a uint8 C x H x W tensor with ``channels`` channels (1 or 3)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # camera photos: upright as a viewer shows them
            img = img.convert("L" if channels == 1 else "RGB")
            return TF.pil_to_tensor(img)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except UnidentifiedImageError:
        raise DataError(f"{path} is not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path} is not a readable image: {err}") from None


def fit_to_size(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize the shorter side to cover ``hw`` (aspect kept), then centre-crop to ``hw``."""
    h, w = hw
    h0, w0 = x.shape[-2:]
    if (h0, w0) != (h, w):
        scale = max(h / h0, w / w0)
        x = TF.resize(x, [max(h, round(h0 * scale)), max(w, round(w0 * scale))], antialias=True)
        x = TF.center_crop(x, [h, w])
    return x


def list_classes(root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class folders; expected {root}/<class name>/<images>")
    return classes


def read_folder(
    root: Path,
    classes: list[str] | None,
    channels: int,
    hw: tuple[int, int],
    strict: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All images under ``root/<class>/``: (uint8 N x C x H x W, labels, class names).

    An empty class folder is an error (the class could never be learned); a file that does not
    decode is skipped with a ``DataWarning`` naming it, or raises with ``strict``.
    """
    found = list_classes(root)
    classes = found if classes is None else classes
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise DataError(f"{root} has class folders {unknown} that the training split lacks")
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files and folder.is_dir():
            raise DataError(f"class folder {folder} is empty; add images or remove the folder")
        n_before = len(images)
        for f in files:
            try:
                images.append(fit_to_size(open_image(f, channels), hw))
            except DataError as err:
                if strict:
                    raise
                warnings.warn(f"skipped: {err}", DataWarning, stacklevel=2)
                continue
            labels.append(label)
        if folder.is_dir() and len(images) == n_before:
            raise DataError(f"class folder {folder} holds no readable images ({len(files)} files)")
    if not images:
        raise DataError(f"{root} holds no images")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), classes
