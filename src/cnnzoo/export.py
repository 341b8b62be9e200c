"""Inference artefacts: batch-norm folding, ONNX, TorchScript and ``torch.export``.

Every export is checked the same way: the exported file is loaded back (ONNX Runtime for ONNX,
``torch.jit.load`` / ``torch.export.load`` for the others), run on a random batch of another size
than the one it was traced with (which also proves the batch dimension stayed dynamic), and the
largest absolute difference to the PyTorch model's output is reported.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from .errors import CnnzooError
from .models._base import check_input_size
from .paths import write_error

FORMATS = ("onnx", "torchscript", "exported")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "exported": ".pt2"}

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# Input sizes tried, on the meta device, when no example input is given: ImageNet, Inception,
# CIFAR/LeNet, Go board.
_CANDIDATE_SIDES = (224, 299, 227, 32, 19)


# --------------------------------------------------------------------------- batch-norm folding


def example_input(
    model: nn.Module, input_size: tuple[int, int, int] | None = None, batch: int = 2
) -> torch.Tensor:
    """A random batch the model accepts: ``input_size`` (C, H, W) if given, else the first of
    224/299/227/32/19 squares (with the model's ``in_chans``) that runs on the meta device."""
    if input_size is not None:
        if len(input_size) != 3:
            raise ValueError(f"input_size must be (C, H, W), got {tuple(input_size)}")
        return torch.randn(batch, *input_size)
    chans = getattr(model, "in_chans", 3)
    for side in _CANDIDATE_SIDES:
        try:
            _trace_meta(model, (batch, chans, side, side))
        except (RuntimeError, CnnzooError):
            continue
        return torch.randn(batch, chans, side, side)
    raise CnnzooError(
        f"cannot guess an input size for {type(model).__name__}; pass input_size=(C, H, W)"
    )


def _trace_meta(model: nn.Module, shape: tuple[int, ...]) -> None:
    """Run the model on the meta device (no compute, the model's tensors untouched)."""
    state = {
        k: torch.empty_like(v, device="meta")
        for k, v in list(model.named_parameters()) + list(model.named_buffers())
    }
    with torch.no_grad():
        functional_call(model, state, (torch.empty(shape, device="meta"),))


def _conv_bn_pairs(model: nn.Module, shape: tuple[int, ...]) -> list[tuple[str, str]]:
    """(layer, batch norm) module names where the norm directly consumes the conv/linear's output.

    Found by running the model once on the meta device with hooks, so it works on any graph
    (residual blocks, Inception branches), not only on ``nn.Sequential`` neighbours. A pair is
    kept only when each module runs once, the norm's input is the very tensor the layer returned
    and was not modified in place since (a ``conv -> ReLU(inplace) -> BN`` is not a pair), and no
    other module reads that tensor (modules that hand their input on unchanged, such as
    eval-mode ``Dropout``, do not count as readers).
    """
    calls: dict[str, int] = {}
    produced: dict[str, tuple[torch.Tensor, int]] = {}  # layer -> (output, its version counter)
    consumed: list[tuple[str, torch.Tensor, int]] = []  # (module, input tensor, version)
    handles = []

    def pre_hook(name: str):
        def hook(_m: nn.Module, args: tuple) -> None:
            calls[name] = calls.get(name, 0) + 1
            for a in args:
                if isinstance(a, torch.Tensor):
                    consumed.append((name, a, a._version))

        return hook

    def post_hook(name: str, layer: bool):
        def hook(_m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if layer and isinstance(out, torch.Tensor):
                produced[name] = (out, out._version)
            if args and out is args[0]:
                passthrough.add(name)

        return hook

    passthrough: set[str] = set()  # modules that return their input (eval Dropout, Identity)
    for name, m in model.named_modules():
        if not list(m.children()):
            handles.append(m.register_forward_pre_hook(pre_hook(name)))
            layer = isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
            handles.append(m.register_forward_hook(post_hook(name, layer)))
    try:
        _trace_meta(model, shape)
    finally:
        for h in handles:
            h.remove()

    modules = dict(model.named_modules())
    pairs = []
    for layer, (out, version) in produced.items():
        # A pass-through (eval-mode Dropout between conv and BN, as in FractalNet) hands on the
        # same tensor, so the norm still reads the layer's output; an in-place op that also
        # returns its input bumps the version counter, which the check below catches.
        readers = [(n, v) for n, t, v in consumed if t is out and n not in passthrough]
        if calls.get(layer) != 1 or len(readers) != 1:
            continue
        bn_name, bn_version = readers[0]
        bn = modules[bn_name]
        if (
            _foldable_norm(bn)
            and calls.get(bn_name) == 1
            and bn_version == version
            and bn.num_features == modules[layer].weight.shape[0]
        ):
            pairs.append((layer, bn_name))
    return pairs


def _foldable_norm(m: nn.Module) -> bool:
    from torchvision.ops import FrozenBatchNorm2d

    if isinstance(m, FrozenBatchNorm2d):
        return True
    # Without running statistics a norm uses the batch's statistics even in eval mode.
    return isinstance(m, _BN_TYPES) and m.track_running_stats and m.running_mean is not None


@torch.no_grad()
def _fuse(layer: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn`` (eval mode: ``y = (x - mean) / sqrt(var + eps) * gamma + beta``) into ``layer``.

    Per output channel c: ``W'[c] = W[c] * s[c]``, ``b'[c] = (b[c] - mean[c]) * s[c] + beta[c]``
    with ``s = gamma / sqrt(var + eps)``; in float64, so the fold adds no rounding of its own.
    """
    w = layer.weight
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(mean)
    shape = (-1,) + (1,) * (w.dim() - 1)
    new_w = (w.double() * scale.reshape(shape)).to(w.dtype)
    new_b = ((bias - mean) * scale + beta).to(w.dtype)
    layer.weight = nn.Parameter(new_w, requires_grad=w.requires_grad)
    layer.bias = nn.Parameter(new_b, requires_grad=w.requires_grad)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def fold_bn(
    model: nn.Module,
    example: torch.Tensor | None = None,
    input_size: tuple[int, int, int] | None = None,
) -> nn.Module:
    """A copy of ``model`` in eval mode with every batch norm folded into the layer before it.

    Each ``Conv -> BatchNorm`` (and ``Linear -> BatchNorm1d``) pair becomes one convolution with a
    bias and the norm is replaced by ``nn.Identity``, so inference does one pass over the feature
    map instead of two; eval-mode outputs are unchanged up to float rounding. Norms that do not
    directly follow a layer (pre-activation nets) are left in place. The pairs are found by one
    forward pass on the meta device at the shape of ``example`` (or ``input_size``, or a guessed
    size). The original model is not modified.
    """
    folded = copy.deepcopy(model).eval()
    if example is not None:
        shape = tuple(example.shape)
    else:
        shape = tuple(example_input(folded, input_size, batch=1).shape)
    modules = dict(folded.named_modules())
    for layer, bn in _conv_bn_pairs(folded, shape):
        _fuse(modules[layer], modules[bn])
        _set_module(folded, bn, nn.Identity())
    return folded


def count_batchnorms(model: nn.Module) -> int:
    """Batch-norm modules (torch's and torchvision's frozen one) left in a model."""
    from torchvision.ops import FrozenBatchNorm2d

    return sum(isinstance(m, _BN_TYPES + (FrozenBatchNorm2d,)) for m in model.modules())


# --------------------------------------------------------------------------------------- export


@dataclass
class ExportResult:
    """What ``export_model`` wrote and how closely the file reproduces the PyTorch model."""

    path: Path  # the file written
    format: str  # "onnx", "torchscript" or "exported"
    trace_shape: tuple[int, ...]  # the example input's shape the model was exported with
    check_shape: tuple[int, ...]  # the (other batch size) input the round trip was checked on
    max_abs_diff: float  # max |exported(x) - model(x)| on the check input
    max_abs_output: float  # max |model(x)|, to judge the difference against
    bytes: int  # size of the file
    seconds: float  # time taken by export and check


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    example: torch.Tensor | None = None,
    input_size: tuple[int, int, int] | None = None,
    opset: int | None = None,
    check: bool = True,
) -> ExportResult:
    """Export ``model`` (put in eval mode) to ``path`` and check the file against the model.

    ``format``: ``"onnx"`` (dynamo exporter, run with ONNX Runtime to check), ``"torchscript"``
    (``torch.jit.trace``; cnnzoo's forwards have Python-level input checks that scripting does
    not accept) or ``"exported"`` (``torch.export``, saved as a ``.pt2`` archive). The batch
    dimension is dynamic in all three. Fold batch norms first with ``fold_bn`` if wanted.
    """
    if format not in FORMATS:
        raise CnnzooError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        return _export_checked(model, Path(path), format, example, input_size, opset, check, start)
    finally:
        model.train(was_training)


def _export_checked(
    model: nn.Module,
    path: Path,
    format: str,
    example: torch.Tensor | None,
    input_size: tuple[int, int, int] | None,
    opset: int | None,
    check: bool,
    start: float,
) -> ExportResult:
    if example is None:
        example = example_input(model, input_size, batch=2)
    check_input_size(model, example.shape[1:])  # one line, not the tracer's pages
    if example.shape[0] < 2:
        # torch.export specialises a dimension of size 1, which would fix the batch to 1.
        example = example.expand(2, *example.shape[1:]).clone()
    path = Path(path)
    if format == "exported" and path.suffix != ".pt2":
        raise CnnzooError(f"a torch.export archive must be named *.pt2, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    exporter = {
        "onnx": _export_onnx,
        "torchscript": _export_torchscript,
        "exported": _export_program,
    }
    try:
        exporter[format](model, example, path, opset)
    except OSError as err:  # a full disk: no half-written file stays, and one line says so
        if err.errno is None:
            raise
        for part in (path, path.with_name(path.name + ".data")):  # ONNX's external data too
            part.unlink(missing_ok=True)
        raise write_error(err, path) from err
    check_x = torch.randn(example.shape[0] + 1, *example.shape[1:])
    diff = ref_max = float("nan")
    if check:
        with torch.no_grad():
            ref = model(check_x)
        got = run_exported(path, format, check_x)
        if got.shape != ref.shape:
            raise CnnzooError(
                f"exported {format} model gives shape {tuple(got.shape)}, "
                f"PyTorch {tuple(ref.shape)}"
            )
        diff = (got - ref).abs().max().item()
        ref_max = ref.abs().max().item()
    return ExportResult(
        path=path,
        format=format,
        trace_shape=tuple(example.shape),
        check_shape=tuple(check_x.shape),
        max_abs_diff=diff,
        max_abs_output=ref_max,
        bytes=path.stat().st_size + _external_data_size(path),
        seconds=time.perf_counter() - start,
    )


def _external_data_size(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return data.stat().st_size if data.exists() else 0


def _batch_dim() -> torch.export.Dim:
    return torch.export.Dim("batch", min=1, max=1 << 16)


# what the exporter logs when it cannot meet the opset asked for: cnnzoo says it in one line
_OPSET_LOGGERS = ("torch.onnx._internal.exporter._compat", "onnxscript.version_converter")


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, opset: int | None) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise CnnzooError(
            "ONNX export needs onnx and onnxscript: pip install 'cnnzoo[export]'"
        ) from None
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and opset > newest:
        raise CnnzooError(f"ONNX opset {opset} does not exist yet: this onnx knows up to {newest}")
    loggers = [logging.getLogger(name) for name in _OPSET_LOGGERS]
    levels = [log.level for log in loggers]
    try:
        for log in loggers:
            log.setLevel(logging.ERROR + 10)  # its warnings come with a traceback
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=({0: _batch_dim()},),
                opset_version=opset,
                verbose=False,
            )
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)
    got = next((o.version for o in program.model_proto.opset_import if o.domain == ""), None)
    if opset is not None and got != opset:  # the down-conversion failed and kept its own opset
        raise CnnzooError(
            f"cannot export {type(model).__name__} at ONNX opset {opset}: the exporter writes "
            f"opset {got} and could not convert it down; choose a higher opset ({got}, the "
            f"exporter's own, always works)"
        )
    program.save(str(path))


def _export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, _opset) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # cnnzoo's input check compares Python ints; the tracer warns that they become constants,
        # which is what we want (the channel count and image size are fixed). TorchScript itself
        # is deprecated in favour of torch.export, but it is still what many C++ and mobile
        # runtimes load, hence both formats.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, (x,), check_trace=False)
    traced.save(str(path))


def _export_program(model: nn.Module, x: torch.Tensor, path: Path, _opset) -> None:
    with torch.no_grad():
        program = torch.export.export(model, (x,), dynamic_shapes=({0: _batch_dim()},))
    torch.export.save(program, str(path))


def run_exported(path: str | os.PathLike, format: str, x: torch.Tensor) -> torch.Tensor:
    """Load an exported file and run it on ``x`` (ONNX through ONNX Runtime on the CPU)."""
    path = str(path)
    if format == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    with torch.no_grad():
        if format == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(path, map_location="cpu")(x)
        if format == "exported":
            return torch.export.load(path).module()(x)
    raise CnnzooError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
