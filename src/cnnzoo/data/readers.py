"""Readers for the dataset files: MNIST-style IDX, CIFAR python batches, scikit-learn's digits.

Each returns uint8 images N x C x H x W and int64 labels, or raises ``DataError`` naming the file
and what is wrong with it (truncated, wrong magic number, counts that disagree).
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

IDX_DTYPES = {0x08: np.uint8}  # the only element type MNIST and Fashion-MNIST use


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"cannot read {path}: {err} (truncated or corrupt download?)") from None


def read_idx(path: str | Path) -> torch.Tensor:
    """An IDX file (``train-images-idx3-ubyte[.gz]``) as a uint8 tensor of the stored shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = data[2], data[3]
    if dtype not in IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: unsupported IDX type 0x{dtype:02x} with {ndim} dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: {len(data)} bytes, shorter than its header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        dims = "x".join(map(str, shape))
        raise DataError(
            f"{path} is truncated or corrupt: its header says {dims} = {expected:,} bytes of data "
            f"but {len(data) - header:,} follow; download it again"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)
    return torch.from_numpy(array.copy())


def read_idx_pair(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = read_idx(images), read_idx(labels)
    if x.dim() != 3 or y.dim() != 1:
        raise DataError(f"{images} / {labels}: expected N x H x W images and N labels")
    if len(x) != len(y):
        raise DataError(f"{images} holds {len(x):,} images but {labels} {len(y):,} labels")
    return x[:, None], y.long()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a CIFAR batch cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path} is truncated or not a CIFAR python batch: {err}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR python batch (it holds {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR python batch: ``data`` (N x 3072, RGB planes of 32x32) and its labels."""
    batch = _unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{path} is not a CIFAR batch: no 'data' or {label_key!r} entry")
    data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' is {data.dtype} {data.shape}, not N x 3072 uint8")
    if len(data) != len(labels):
        raise DataError(f"{path} holds {len(data):,} images but {len(labels):,} labels")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return x, torch.from_numpy(labels.astype(np.int64))


def read_cifar(root: Path, fine: bool = True) -> dict:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or CIFAR-100 (``train``,
    ``test``, ``meta``) from ``root``: ``{"train": (x, y), "test": (x, y), "classes": [...]}``."""
    if (root / "data_batch_1").exists():
        train = [read_cifar_batch(root / f"data_batch_{i}", "labels") for i in range(1, 6)]
        test = read_cifar_batch(root / "test_batch", "labels")
        meta, key = root / "batches.meta", "label_names"
    else:
        label = "fine_labels" if fine else "coarse_labels"
        train = [read_cifar_batch(root / "train", label)]
        test = read_cifar_batch(root / "test", label)
        meta, key = root / "meta", "fine_label_names" if fine else "coarse_label_names"
    classes = None
    if meta.exists():
        names = _unpickle(meta).get(key)
        if names is not None:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    x = torch.cat([b[0] for b in train])
    y = torch.cat([b[1] for b in train])
    return {"train": (x, y), "test": test, "classes": classes}


def read_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16) scaled to uint8."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return torch.from_numpy(x)[:, None], torch.from_numpy(d.target.astype(np.int64))
