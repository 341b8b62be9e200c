"""Shared pieces of the benchmarks: the machine's description, timing, Fashion-MNIST as tensors.

Everything here is deliberately independent of cnnzoo's own loaders and trainer, so the baselines
measure what a user would write by hand.
"""

from __future__ import annotations

import gzip
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class Section:
    """One benchmark's contribution to docs/benchmarks.md."""

    title: str
    table: list[dict]  # rows; the keys of the first row are the columns
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.table:
            cols = list(self.table[0])
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("|" + "---|" * len(cols))
            for row in self.table:
                lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |")
            lines.append("")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def machine() -> str:
    from cnnzoo.analysis.ceilings import cpu_name

    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {torch.get_num_threads()} threads, {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_tensors(pad_to: int = 32) -> tuple[torch.Tensor, ...] | None:
    """Fashion-MNIST as normalised float tensors (N, 1, 32, 32); None when the files are absent."""
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    names += ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = [FASHION_DIR / f"{n}.gz" for n in names]
    if not all(p.exists() for p in paths):
        return None
    xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
    pad = (pad_to - 28) // 2

    def prep(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x.copy()).float().div_(255).unsqueeze(1)
        t = torch.nn.functional.pad(t, (pad, pad, pad, pad))
        return (t - 0.2860) / 0.3530  # Fashion-MNIST training-set mean and std

    return (
        prep(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        prep(xte),
        torch.from_numpy(yte.astype(np.int64)),
    )
