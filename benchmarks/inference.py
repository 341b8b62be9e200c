"""Inference throughput: cnnzoo's fast paths (``optimize_for_inference``, both backends) vs
torchvision eager vs ONNX Runtime on torchvision's exported model.

ResNet-50 at 224x224, batch 16 (ResNet-18 at 64x64 in --quick).

All contestants hold the same weights and run the same batch in the same process, alternating;
achieved GFLOP/s = 2 x the analyzer's MACs / time, shown as a fraction of the fp32
matrix-multiply peak measured in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

import cnnzoo
from cnnzoo.export import export_model
from cnnzoo.inference import optimize_for_inference

from .common import Section, median_time
from .matmul_peak import peak_gflops


def _contestants(
    arch: str, batch: int, size: int, workdir: Path
) -> dict[str, Callable[[], object]]:
    tv = getattr(torchvision.models, arch)().eval()
    ours = cnnzoo.create_model(arch).eval()
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(batch, 3, size, size)

    def tv_eager():
        with torch.no_grad():
            return tv(x)

    fast_torch = optimize_for_inference(ours, example=x[:2], backend="torch")
    out: dict[str, Callable[[], object]] = {
        "torchvision eager": tv_eager,
        "cnnzoo optimize_for_inference, torch backend": lambda: fast_torch(x),
    }
    try:
        import onnxruntime as ort

        path = workdir / f"{arch}.onnx"
        export_model(tv, path, "onnx", example=x[:2], check=False)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x.numpy()}
        out["ONNX Runtime (torchvision's model exported, default session)"] = lambda: sess.run(
            None, feed
        )
        fast_ort = optimize_for_inference(ours, example=x[:2], backend="onnxruntime")
        out["cnnzoo optimize_for_inference, onnxruntime backend (the default on CPU)"] = lambda: (
            fast_ort(x)
        )
    except Exception as err:  # no ONNX stack: the table says so
        print(f"[inference] ONNX Runtime skipped: {err}")
    return out


def run(quick: bool = False) -> Section:
    # the quick smoke run exercises the same path on a smaller net
    arch, batch, size, rounds = ("resnet18", 2, 64, 1) if quick else ("resnet50", 16, 224, 3)
    peak = peak_gflops(512 if quick else 2048, repeats=3)
    macs = cnnzoo.analyze(cnnzoo.create_model(arch), (3, size, size)).total.macs * batch
    with tempfile.TemporaryDirectory() as tmp:
        fns = _contestants(arch, batch, size, Path(tmp))
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                times[name].append(median_time(fn, repeats=2 if quick else 5, warmup=1))
    base = statistics.median(times["torchvision eager"])
    ort_name = next((k for k in times if k.startswith("ONNX Runtime")), None)
    ort_t = statistics.median(times[ort_name]) if ort_name else float("nan")
    rows = []
    for name, ts in times.items():
        t = statistics.median(ts)
        gflops = 2 * macs / t / 1e9
        rows.append(
            {
                "contestant": name,
                "images/s": batch / t,
                "vs torchvision": base / t,
                "vs ONNX Runtime": ort_t / t,
                "GFLOP/s": gflops,
                "fraction of peak": gflops / peak,
            }
        )
    return Section(
        f"Inference throughput: {arch}, batch {batch} at {size}x{size}, CPU fp32",
        rows,
        [
            f"matmul peak measured in this run: {peak:,.1f} GFLOP/s; "
            f"{arch} = {macs / batch / 1e9:.3f} GMACs per image (cnnzoo.analyze)",
            "same weights in every contestant; medians over alternating rounds",
        ],
    )
