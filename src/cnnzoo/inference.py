"""Fast inference: ``optimize_for_inference(model)`` returns a module that computes the same
eval-mode outputs faster.

Two backends, chosen by measurement (docs/benchmarks.md, ResNet-50 on the 2-core CPU):

- ``"torch"``: batch norms folded into the convolutions (``cnnzoo.export.fold_bn``),
  channels-last weights and inputs, ``torch.inference_mode``. About 1.6x torchvision eager.
- ``"onnxruntime"``: the folded model exported to ONNX and run by ONNX Runtime's CPU provider,
  whose GEMM kernels reach about twice the fp32 throughput of PyTorch's on this machine.

``"auto"`` takes ONNX Runtime for a CPU model when it is installed (``pip install
cnnzoo[test]`` or ``pip install onnxruntime onnxscript``) and ``"torch"`` otherwise (CUDA included).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import torch
from torch import nn

from .errors import CnnzooError
from .export import example_input, export_model, fold_bn

BACKENDS = ("auto", "torch", "onnxruntime")


def _has_onnxruntime() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnxscript"))


class TorchInference(nn.Module):
    """A BN-folded, channels-last copy of a model run under ``torch.inference_mode``."""

    backend = "torch"

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        super().__init__()
        self.model = fold_bn(model, example=example[:1]).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.model(x)


class OnnxRuntimeInference(nn.Module):
    """A model exported to ONNX (batch norms folded) and run by an ONNX Runtime session.

    Takes and returns CPU float32 tensors; the batch size is free, the image size is the one the
    model was exported at."""

    backend = "onnxruntime"

    def __init__(self, model: nn.Module, example: torch.Tensor, threads: int | None) -> None:
        super().__init__()
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            export_model(fold_bn(model, example=example[:1]), path, "onnx", example=example)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads or torch.get_num_threads()
            # the session reads the file (and any external weights) now; tmp may go after this
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(example.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise CnnzooError(
                f"this ONNX Runtime model was exported for inputs of shape "
                f"(N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}; "
                f"call optimize_for_inference again with an example of the new size"
            )
        if x.device.type != "cpu":
            raise CnnzooError("the onnxruntime backend runs on the CPU; use backend='torch'")
        feed = {self.input_name: x.detach().float().contiguous().numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0])


def optimize_for_inference(
    model: nn.Module,
    example: torch.Tensor | None = None,
    input_size: tuple[int, int, int] | None = None,
    backend: str = "auto",
    threads: int | None = None,
) -> nn.Module:
    """A module computing ``model``'s eval-mode outputs (the main logits) faster.

    ``example`` (or ``input_size``, else the model's own) fixes the image size the ONNX backend
    is exported at; any batch size works. ``backend``: ``"auto"``, ``"torch"`` or
    ``"onnxruntime"`` (see the module docstring). The original model is not modified; the
    returned module has a ``backend`` attribute saying which one it is.
    """
    if backend not in BACKENDS:
        raise CnnzooError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if example is None:
        example = example_input(model, input_size, batch=2)
    example = example.to(device)
    if backend == "auto":
        backend = "onnxruntime" if device.type == "cpu" and _has_onnxruntime() else "torch"
    if backend == "torch":
        return TorchInference(model, example)
    if device.type != "cpu":
        raise CnnzooError(
            f"the onnxruntime backend runs on the CPU but the model is on {device}; "
            "use backend='torch' or move the model with .cpu()"
        )
    if not _has_onnxruntime():
        raise CnnzooError(
            "the onnxruntime backend needs onnxruntime and onnxscript: "
            "pip install onnxruntime onnxscript (or use backend='torch')"
        )
    return OnnxRuntimeInference(model, example, threads)
