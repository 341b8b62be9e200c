"""The machine's fp32 matrix-multiply peak: the yardstick for achieved GFLOP/s elsewhere."""

from __future__ import annotations

import torch

from .common import Section, median_time


def peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Median GFLOP/s of an n x n x n fp32 matmul (2*n^3 floating-point operations)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median_time(lambda: a @ b, repeats=repeats, warmup=2)
    return 2 * n**3 / seconds / 1e9


def run(quick: bool = False) -> Section:
    sizes = [512] if quick else [1024, 2048, 4096]
    rows = [{"n": n, "GFLOP/s (fp32)": peak_gflops(n, 3 if quick else 5)} for n in sizes]
    best = max(r["GFLOP/s (fp32)"] for r in rows)
    return Section(
        "Matrix-multiply peak",
        rows,
        [f"peak used as the yardstick below: {best:,.1f} GFLOP/s (the best size's median)"],
    )
