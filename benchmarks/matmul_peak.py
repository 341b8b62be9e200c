"""The machine's fp32 matrix-multiply peak: the yardstick for achieved GFLOP/s elsewhere.

Measured with torch (MKL/oneDNN) and with ONNX Runtime's own GEMM (MLAS): on some CPUs one
library's kernels reach far more of the hardware than the other's, so the yardstick is the
better of the two — a fraction of peak above 1.0 would mean the yardstick was too low.
"""

from __future__ import annotations

import numpy as np
import torch

from .common import Section, median_time


def torch_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Median GFLOP/s of an n x n x n fp32 torch matmul (2*n^3 floating-point operations)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median_time(lambda: a @ b, repeats=repeats, warmup=2)
    return 2 * n**3 / seconds / 1e9


def onnxruntime_gflops(n: int = 2048, repeats: int = 5) -> float | None:
    """The same product through ONNX Runtime's MatMul; None without onnx/onnxruntime."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal((n, n), dtype=np.float32) for k in "ab"}
    onnx.checker.check_model(model)
    seconds = median_time(lambda: sess.run(None, feed), repeats=repeats, warmup=2)
    return 2 * n**3 / seconds / 1e9


def peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The better of torch's and ONNX Runtime's fp32 matmul GFLOP/s at size n."""
    return max(torch_gflops(n, repeats), onnxruntime_gflops(n, repeats) or 0.0)


def run(quick: bool = False) -> Section:
    sizes = [512] if quick else [1024, 2048, 4096]
    rows = []
    for n in sizes:
        reps = 3 if quick else 5
        ort_rate = onnxruntime_gflops(n, reps)
        rows.append(
            {
                "n": n,
                "torch GFLOP/s": torch_gflops(n, reps),
                "ONNX Runtime GFLOP/s": ort_rate if ort_rate is not None else "n/a",
            }
        )
    rates = [v for r in rows for k, v in r.items() if k != "n" and isinstance(v, float)]
    best = max(rates)
    return Section(
        "Matrix-multiply peak (fp32)",
        rows,
        [f"peak used as the yardstick below: {best:,.1f} GFLOP/s (the best median)"],
    )
