"""Class-per-folder image trees (``root/<class>/*.jpg``).

Every image is decoded once at load time, brought to the model's channels and to ``H x W``
(shorter side resized to fit, then a centre crop, as torchvision's evaluation transforms do) and
kept as uint8: that finds a corrupt file before training starts rather than in the middle of
epoch 3, and suits the folder sizes one fine-tunes on (thousands of images). A folder too big for
memory is read by ``FolderDataset`` instead, which decodes each image when it is used (every
file's header is checked at load time; a file that still fails to decode stops the run).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import DataError
from .transforms import INTERPOLATIONS, _tf, augment_batch, normalize, resize_filter, to_model_space


class DataWarning(UserWarning):
    """A file of a dataset was skipped (corrupt, or not an image)."""


NAMED_SKIPS = 5  # unreadable files named one warning each; any more are counted in one


def warn_skipped(errors: list[DataError], stacklevel: int = 3) -> None:
    """One ``DataWarning`` per skipped file for the first ``NAMED_SKIPS``, then one that counts
    the rest: a folder of ten thousand text files should not print ten thousand lines."""
    for err in errors[:NAMED_SKIPS]:
        warnings.warn(f"skipped: {err}", DataWarning, stacklevel=stacklevel)
    if len(errors) > NAMED_SKIPS:
        more = len(errors) - NAMED_SKIPS
        warnings.warn(
            f"skipped {more:,} more unreadable file{'s' if more > 1 else ''} "
            f"({len(errors):,} in all); --strict stops at the first",
            DataWarning,
            stacklevel=stacklevel,
        )


def open_image(path: str | Path, channels: int) -> torch.Tensor:
    """Decode an image file to a uint8 C x H x W tensor with ``channels`` channels (1 or 3).

    A file whose header claims more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression
    bomb: a small file that would decode to gigabytes) is refused before it is decoded.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a pipe would block the read, a folder fail late
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise DataError(f"{path} is {kind}; give an image file")
    try:
        with _bomb_is_error(), Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # camera photos: upright as a viewer shows them
            img = img.convert("L" if channels == 1 else "RGB")
            return _tf().pil_to_tensor(img)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(path) from None
    except UnidentifiedImageError:
        raise DataError(f"{path} is not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path} is not a readable image: {err}") from None


@contextmanager
def _bomb_is_error() -> Iterator[None]:
    """PIL only warns between MAX_IMAGE_PIXELS and twice that; here both refuse the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _bomb(path: Path) -> DataError:
    """The refusal of an image that claims too many pixels, read from its header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as img:
                    w, h = img.size
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        size = f"{w}x{h} = {w * h / 1e6:,.0f} Mpixels"
    except Exception:  # the header was read once already; this is only for the message
        limit, size = Image.MAX_IMAGE_PIXELS, "too many pixels"
    return DataError(
        f"{path} claims {size}, more than the {limit / 1e6:,.0f} Mpixels PIL allows "
        f"(PIL.Image.MAX_IMAGE_PIXELS): a decompression bomb, or an image to shrink first"
    )


@dataclass(frozen=True)
class FitToSize:
    """Resize the shorter side to cover ``size`` (aspect kept), then centre-crop to ``size``:
    torchvision's ``Resize(short side) + CenterCrop`` evaluation transform, with the resize filter
    the weights were trained with (timm's ``interpolation``: ``"bilinear"`` or ``"bicubic"``)."""

    size: tuple[int, int]  # (H, W) of the result
    interpolation: str = "bilinear"  # torchvision's InterpolationMode value

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise DataError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                f"got {self.interpolation!r}"
            )

    @property
    def mode(self):
        """The ``torchvision.transforms.InterpolationMode`` the resize uses."""
        from torchvision.transforms import InterpolationMode

        return InterpolationMode(self.interpolation)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        h0, w0 = x.shape[-2:]
        if (h0, w0) != (h, w):
            # the other side as torchvision's Resize(short side) computes it: truncated
            if h / h0 >= w / w0:
                size = [h, max(w, int(h * w0 / h0))]
            else:
                size = [max(h, int(w * h0 / w0)), w]
            x = _tf().resize(x, size, interpolation=self.mode, antialias=True)
            x = _tf().center_crop(x, [h, w])
        return x


def fit_to_size(x: torch.Tensor, hw: tuple[int, int], interpolation: str = "bilinear"):
    """``FitToSize(hw, interpolation)(x)``."""
    return FitToSize(tuple(hw), interpolation)(x)


def image_transform(preprocess: dict) -> FitToSize:
    """What an image file goes through before ``to_model_space``: fitted to the preprocessing's
    source size with its resize filter (``preprocess["interpolation"]``, default bilinear)."""
    return FitToSize(tuple(preprocess["source_size"]), resize_filter(preprocess))


def list_classes(root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class folders; expected {root}/<class name>/<images>")
    return classes


def scan_folder(root: Path, classes: list[str] | None) -> tuple[list[list[Path]], list[str]]:
    """The files of each class folder of ``root`` (in the order of ``classes``, default: the
    sorted folder names). An empty class folder is an error: the class could never be learned."""
    found = list_classes(root)
    classes = found if classes is None else classes
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise DataError(f"{root} has class folders {unknown} that the training split lacks")
    per_class = []
    for name in classes:
        folder = root / name
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files and folder.is_dir():
            raise DataError(f"class folder {folder} is empty; add images or remove the folder")
        per_class.append(files)
    return per_class, classes


def read_folder(
    root: Path,
    classes: list[str] | None,
    channels: int,
    hw: tuple[int, int],
    strict: bool = False,
    decode: bool = True,
    interpolation: str = "bilinear",
) -> tuple[torch.Tensor | list[Path], torch.Tensor, list[str]]:
    """The images under ``root/<class>/``: (uint8 N x C x H x W, labels, class names), or with
    ``decode=False`` (a folder too big for memory) the files whose header PIL can read.

    A file that cannot be read is skipped with a ``DataWarning`` naming it, or raises with
    ``strict``; a class folder left without images is an error. ``interpolation`` is the resize
    filter (``FitToSize``).
    """
    fit = FitToSize(tuple(hw), interpolation)
    per_class, classes = scan_folder(root, classes)
    images, labels, skipped = [], [], []
    try:
        for label, files in enumerate(per_class):
            n_before = len(images)
            for f in files:
                try:
                    images.append(fit(open_image(f, channels)) if decode else _probe(f))
                except DataError as err:
                    if strict:
                        raise
                    skipped.append(err)
                    continue
                labels.append(label)
            if files and len(images) == n_before:
                folder = root / classes[label]
                raise DataError(
                    f"class folder {folder} holds no readable images ({len(files)} files)"
                )
    finally:  # the files skipped so far are said also when the folder then fails
        warn_skipped(skipped, stacklevel=3)
    if not images:
        raise DataError(f"{root} holds no images")
    x = torch.stack(images) if decode else images
    return x, torch.tensor(labels, dtype=torch.long), classes


def _probe(path: Path) -> Path:
    """Read the header only (no decoding): cheap enough for a folder of a million files."""
    try:
        with _bomb_is_error(), Image.open(path):
            return path
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(path) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise DataError(f"{path} is not a readable image (unknown or corrupt format)") from None


class FolderDataset(Dataset):
    """Image files decoded on access (for folders too big to keep in memory); each item goes
    through the same pipeline as ``TensorImageDataset``'s."""

    def __init__(
        self,
        files: list[Path],
        labels: torch.Tensor,
        preprocess: dict,
        augment: str = "none",
        name: str = "",
    ) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files, self.labels = list(files), labels.long()
        self.preprocess, self.augment, self.name = preprocess, augment, name

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        c, h, w = self.preprocess["input_size"]
        fit = FitToSize((h, w), resize_filter(self.preprocess))
        x = fit(open_image(self.files[index], c))[None]
        x = to_model_space(x, self.preprocess)
        if self.augment != "none":
            x = augment_batch(x, self.augment)  # torch's RNG: DataLoader seeds each worker
        return normalize(x, self.preprocess)[0], int(self.labels[index])

    def subset(self, indices: torch.Tensor, augment: str | None = None) -> FolderDataset:
        return FolderDataset(
            [self.files[i] for i in indices.tolist()],
            self.labels[indices],
            self.preprocess,
            self.augment if augment is None else augment,
            self.name,
        )
