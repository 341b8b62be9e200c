"""This machine's ceilings, measured: the matrix-multiply peak and the memory bandwidth.

The roofline of a layer is ``min(peak, bandwidth * intensity)``: below the ridge point a layer is
bound by memory traffic, above it by arithmetic. Both numbers are measured here rather than taken
from a data sheet, because what a shared, throttled CPU delivers is not what it promises.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Ceilings:
    gflops: float  # best fp32 matrix-multiply rate, GFLOP/s
    gbps: float  # best copy bandwidth, GB/s (bytes read + bytes written)
    machine: str

    @property
    def ridge(self) -> float:
        """FLOPs per byte where the two roofs meet."""
        return self.gflops / self.gbps


def machine(device: torch.device | str = "cpu") -> str:
    """The processor (or GPU) and the threads torch uses on it, in words."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def cpu_name() -> str:
    """The processor's model name (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _best_seconds(fn, repeats: int, sync) -> float:
    fn()  # warm-up: allocation, kernel selection
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Best GFLOP/s of an n x n by n x n fp32 product (2 n^3 FLOPs) over ``repeats`` runs."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / _best_seconds(lambda: a @ b, repeats, _sync(device)) / 1e9


# (size, repeats) of the products the peak is the best of: on a shared machine a 2048^3 product
# (seconds on a throttled CPU) rarely runs a whole repeat undisturbed and shares the last-level
# cache with other jobs; smaller ones, repeated more, catch the quiet moments. Measured on a
# loaded AMD EPYC (2026-12-06, one thread): 512: 99, 1024: 51, 2048: 48 GFLOP/s.
PEAK_SIZES = ((512, 40), (1024, 15), (2048, 3))
QUICK_PEAK_SIZES = ((256, 10), (512, 3))


def best_matmul_peak(sizes=PEAK_SIZES, device: str = "cpu") -> float:
    """The matrix-multiply peak: the best rate of products of several sizes (``sizes``: pairs of
    side and repeats), so that neither a cache-bound small product nor a disturbed large one
    sets it alone."""
    return max(matmul_peak(n, repeats, device) for n, repeats in sizes)


def copy_bandwidth(megabytes: int = 256, repeats: int = 5, device: str = "cpu") -> float:
    """Best GB/s of copying a tensor far larger than any cache into another (each byte read
    once and written once, as STREAM's copy kernel counts it)."""
    src = torch.ones(megabytes * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), repeats, _sync(device))
    return 2 * src.numel() * src.element_size() / seconds / 1e9


def measure(device: str = "cpu", quick: bool = False) -> Ceilings:
    """Both ceilings of ``device`` (``quick``: smaller sizes, for tests and smoke runs)."""
    return Ceilings(
        gflops=best_matmul_peak(QUICK_PEAK_SIZES if quick else PEAK_SIZES, device),
        gbps=copy_bandwidth(32 if quick else 256, 3 if quick else 5, device),
        machine=machine(device),
    )


def _sync(device: str):
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
