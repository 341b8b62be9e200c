"""Anatomy of any ``nn.Module``: the lecture's per-layer arithmetic, computed on the meta device.

``analyze(model, input_size)`` returns a ``Report``: per layer the output volume, parameters with
their formula, MACs, activations, receptive field and effective stride; totals for parameters
(trainable, frozen, shared counted once), MACs and FLOPs (= 2 x MACs), forward and training memory.
The model is left exactly as it was. See docs/anatomy.md for the definitions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import CnnzooError
from .memory import TrainingMemory, training_memory
from .report import LayerStats, Report, Totals
from .rules import param_formula
from .trace import Row, Trace, record

__all__ = ["LayerStats", "Report", "Totals", "TrainingMemory", "analyze"]


def analyze(
    model: nn.Module,
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    name: str | None = None,
) -> Report:
    """Analyse ``model`` on a batch of ``batch_size`` inputs of ``input_size`` (C, H, W).

    Runs on the meta device (no weights are allocated, so a large model at a large input costs
    nothing) and leaves the model untouched: no hooks, buffers or attributes left behind, no device
    moved, the training flags as they were, even when it raises. The per-layer table is the
    evaluation-mode network; the training memory comes from a second pass in training mode.
    ``dtype`` is the precision of the input, and of the floating-point weights as if the model
    had been converted with ``model.to(dtype)`` (bytes scale with it; counts do not).
    """
    if not isinstance(model, nn.Module):
        raise CnnzooError(f"analyze needs an nn.Module, got {type(model).__name__}")
    input_size = tuple(int(s) for s in input_size)
    if not input_size or any(s <= 0 for s in input_size):
        raise CnnzooError(f"input size must be positive, e.g. (3, 224, 224), got {input_size}")
    if batch_size < 1:
        raise CnnzooError(f"batch size must be at least 1, got {batch_size}")
    chans = getattr(model, "in_chans", None)
    if len(input_size) == 2 and isinstance(chans, int):  # (H, W) for an image model
        h, w = input_size
        raise CnnzooError(
            f"input_size is (C, H, W), got {input_size}; for {type(model).__name__}'s "
            f"{chans}-channel images of {h}x{w}: ({chans}, {h}, {w})"
        )
    shape = (batch_size, *input_size)
    try:
        trace = record(model, shape, dtype)
        memory = training_memory(model, shape, dtype)
    except CnnzooError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        if _raised_by_analyzer(err):  # a bug of ours, not the user's model: keep the traceback
            raise
        size = "x".join(map(str, input_size))
        raise CnnzooError(
            f"{type(model).__name__} does not run on a {size} input: {str(err).splitlines()[0]}"
        ) from err
    return _build_report(model, trace, memory, input_size, batch_size, dtype, name)


def _raised_by_analyzer(err: BaseException) -> bool:
    """Whether the innermost frame of ``err`` is in this package (rather than in the model or in
    PyTorch, which is where a model that does not run on the input fails)."""
    if getattr(err, "cnnzoo_op_error", False):
        return False
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and os.path.dirname(os.path.abspath(last)) == _HERE


_HERE = os.path.dirname(os.path.abspath(__file__))


def _build_report(
    model: nn.Module,
    trace: Trace,
    memory: TrainingMemory,
    input_size: tuple[int, ...],
    batch_size: int,
    dtype: torch.dtype,
    name: str | None,
) -> Report:
    hw = input_size[1:]
    layers = [_layer(r, hw, batch_size) for r in trace.rows]
    params = list(model.parameters())  # a shared tensor appears once
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total_params = sum(p.numel() for p in params)
    uncounted: dict[str, int] = {}
    for r in trace.rows:
        for k, v in r.uncounted.items():
            uncounted[k] = uncounted.get(k, 0) + v
    macs = sum(r.macs for r in trace.rows)
    backward_macs = sum(r.backward_macs for r in trace.rows)
    rf, rf_global = _final_field(layers)
    forward_bytes = sum(trace.storages.values())
    esize = torch.empty((), dtype=dtype).element_size()
    totals = Totals(
        params=total_params,
        trainable=trainable,
        frozen=total_params - trainable,
        macs=macs,
        flops=2 * macs,
        activations=forward_bytes // esize,
        forward_bytes=forward_bytes,
        training_bytes=memory.total,
        rf=rf,
        rf_global=rf_global,
        uncounted=uncounted,
        saved_bytes=memory.saved_bytes,
        weight_bytes=memory.weight_bytes,
        grad_bytes=memory.grad_bytes,
        optimizer_bytes=memory.optimizer_bytes,
        unused_params=trace.unused_params,
        notes=_notes(model, trace, memory),
        backward_macs=backward_macs,
        train_step_macs=macs + backward_macs,
    )
    return Report(
        model=name or type(model).__name__,
        input_size=input_size,
        batch_size=batch_size,
        layers=layers,
        total=totals,
        dtype=str(dtype).replace("torch.", ""),
    )


def _notes(model: nn.Module, trace: Trace, memory: TrainingMemory) -> list[str]:
    notes = []
    if trace.unused_params:
        # Group by module (``aux1``, ``aux2``): typically heads that run only in training.
        sizes = dict(model.named_parameters())
        groups: dict[str, int] = {}
        for n in trace.unused_params:
            key = n.rsplit(".", 1)[0].split(".")[0] if "." in n else n
            groups[key] = groups.get(key, 0) + sizes[n].numel()
        where = ", ".join(f"{k} ({v:,})" for k, v in groups.items())
        notes.append(
            f"Parameters not used by the evaluation-mode forward (counted in the totals, on no "
            f"row): {where}"
        )
    if memory.extrapolated:
        notes.append(
            "A batch of 1 cannot train this model (batch norm over a single value per channel); "
            "its autograd memory is extrapolated from batches of 2 and 3."
        )
    return notes


def _layer(r: Row, hw: tuple[int, ...], batch: int) -> LayerStats:
    out = r.output
    if out is not None and out.dim() >= 1 and out.shape[0] == batch:
        per_sample = tuple(out.shape[1:])
    else:
        per_sample = tuple(out.shape) if out is not None else ()
    f = r.field
    return LayerStats(
        name=r.name,
        type=r.type,
        output=per_sample,
        params=sum(p[3] for p in r.params),
        param_formula=param_formula([(p[1], p[2]) for p in r.params]),
        macs=r.macs,
        activations=out.numel() if out is not None else 0,
        act_bytes=out.numel() * out.element_size() if out is not None else 0,
        rf=f.size(hw) if f is not None else 0,
        stride=f.stride() if f is not None else 0,
        rf_global=bool(f and f.glob),
        depth=r.depth,
        uncounted=dict(r.uncounted),
        shared=list(r.shared),
        inplace=r.inplace,
        inputs=list(r.inputs),
        input_shapes=[_per_sample(s, batch) for s in r.input_shapes],
        backward_macs=r.backward_macs,
    )


def _per_sample(shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    """A shape without its batch dimension (a tensor without one stays as it is)."""
    return tuple(shape[1:]) if shape and shape[0] == batch else tuple(shape)


def _final_field(layers: list[LayerStats]) -> tuple[int, bool]:
    """The field of the final feature map: the last row with a spatial output, passing over the
    outputs of global pooling (global and a single position), which are not feature maps."""
    for r in reversed(layers):
        if len(r.output) >= 3 and (not r.rf_global or any(s > 1 for s in r.output[1:])):
            return r.rf, r.rf_global
    return 1, False
