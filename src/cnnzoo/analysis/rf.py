"""Receptive fields, carried per tensor through the graph.

Every tensor the forward pass makes gets a ``Field``: the size (per spatial dimension, in input
pixels) of the input region one of its units sees, and its effective stride ("jump": how many input
pixels apart two neighbouring units are). A k x k convolution or pooling of stride s and dilation d
turns ``(rf, jump)`` into ``(rf + d*(k-1)*jump, jump*s)``; padding does not change the size (the
field of a border unit is partly outside the image). Ops with several inputs (``+``, ``*``,
``torch.cat``) take the largest field of their inputs, so branches (Inception, residual
shortcuts) are handled exactly. Global pooling (also ``x.mean((2, 3))`` inside a squeeze-and-
excitation block) makes the field the whole input and marks it global; a linear layer after a
flatten sees the whole flattened map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from .rules import (
    ADAPTIVE_POOL_OPS,
    AVG_POOL_OPS,
    CONV_OPS,
    CONV_T_OPS,
    MATMUL_OPS,
    MAX_POOL_OPS,
    REDUCE_OPS,
    VIEW_OPS,
    arg,
    base_op,
    ntuple,
)


@dataclass(frozen=True)
class Field:
    rf: tuple[float, ...]  # field size per spatial dimension, in input pixels
    jump: tuple[float, ...]  # effective stride per spatial dimension, in input pixels
    glob: bool = False  # the unit sees the whole input (global pooling on its path)
    flat: tuple[float, ...] | None = None  # extent of the whole map this vector was flattened from

    def size(self, input_hw: Sequence[int]) -> int:
        """The field as one number: the larger side, or the whole input when global."""
        if self.glob or not self.rf:
            return max(input_hw) if input_hw else 1
        return int(round(max(self.rf)))

    def stride(self) -> int:
        return int(round(max(self.jump))) if self.jump else 1


def input_field(x: torch.Tensor) -> Field:
    """The field of the input image itself: one pixel, stride one."""
    n = max(x.dim() - 2, 0)
    return Field(rf=(1.0,) * n, jump=(1.0,) * n)


def merge(fields: list[Field]) -> Field | None:
    """The field of an op combining several tensors: the largest of each."""
    if not fields:
        return None
    if len(fields) == 1:
        return fields[0]
    n = max(len(f.rf) for f in fields)
    same = [f for f in fields if len(f.rf) == n]
    flats = [f.flat for f in fields if f.flat is not None]
    return Field(
        rf=tuple(max(f.rf[i] for f in same) for i in range(n)),
        jump=tuple(max(f.jump[i] for f in same) for i in range(n)),
        glob=any(f.glob for f in fields),
        flat=tuple(max(fl[i] for fl in flats) for i in range(len(flats[0]))) if flats else None,
    )


def _window(f: Field, kernel, stride, dilation) -> Field:
    n = len(f.rf)
    k, s, d = ntuple(kernel, n), ntuple(stride, n), ntuple(dilation, n)
    return replace(
        f,
        rf=tuple(f.rf[i] + d[i] * (k[i] - 1) * f.jump[i] for i in range(n)),
        jump=tuple(f.jump[i] * s[i] for i in range(n)),
    )


def _spatial_dims(x: torch.Tensor, n: int) -> list[int]:
    return list(range(x.dim() - n, x.dim())) if n else []


def propagate(
    name: str, args: Sequence, kwargs: dict, inputs: list[tuple[torch.Tensor, Field]], out
) -> Field | None:
    """The field of the output of one call, from the fields of its tensor inputs."""
    op = base_op(name)
    if not inputs:
        return None
    x, f = inputs[0]
    n = len(f.rf)
    # Ops whose first input is the image-like tensor and whose window is known.
    if n and x.dim() >= n + 1:
        if op in CONV_OPS or op in CONV_T_OPS:
            weight = arg(args, kwargs, 1, "weight")
            if isinstance(weight, torch.Tensor) and weight.dim() - 2 == n:
                kernel = tuple(weight.shape[2:])
                stride = arg(args, kwargs, 3, "stride", 1)
                dil_index = 7 if op in CONV_T_OPS else 5
                dilation = arg(args, kwargs, dil_index, "dilation", 1)
                if op in CONV_T_OPS:  # upsampling: the stride divides the jump
                    g = _window(f, kernel, 1, dilation)
                    s = ntuple(stride, n)
                    return replace(g, jump=tuple(g.jump[i] / s[i] for i in range(n)))
                return _window(f, kernel, stride, dilation)
        if op in MAX_POOL_OPS or op in AVG_POOL_OPS:
            kernel = arg(args, kwargs, 1, "kernel_size")
            stride = arg(args, kwargs, 2, "stride") or kernel
            dilation = arg(args, kwargs, 4, "dilation", 1) if op in MAX_POOL_OPS else 1
            return _window(f, kernel, stride, dilation)
        if op in ADAPTIVE_POOL_OPS:
            return _adaptive(f, x, arg(args, kwargs, 1, "output_size"))
        if op in REDUCE_OPS:
            dims = arg(args, kwargs, 1, "dim")
            if dims is None or isinstance(dims, torch.Tensor):  # a full reduction
                return replace(f, glob=True)
            dims = [dims] if isinstance(dims, int) else list(dims)
            dims = [d % x.dim() for d in dims]
            if set(dims) & set(_spatial_dims(x, n)):
                return replace(f, glob=True)
            return f
    if op == "getitem" and n:
        return _getitem(f, x, args[1] if len(args) > 1 else None, n)
    upsampling = op in ("interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
    if upsampling and n and isinstance(out, torch.Tensor) and out.dim() == x.dim():
        # Upsampling by r: neighbouring outputs are 1/r input pixels apart.
        scale = [x.shape[-n + i] / out.shape[-n + i] for i in range(n)]
        return replace(f, jump=tuple(f.jump[i] * scale[i] for i in range(n)))
    if op in VIEW_OPS:
        return _view(f, x, out, n)
    if op in MATMUL_OPS:
        # Mixing features: a vector flattened from a map sees the whole map.
        fields = [g for _, g in inputs]
        merged = merge(fields)
        if merged is not None and merged.flat is not None:
            return replace(merged, rf=merged.flat, flat=None)
        return merged
    return merge([g for _, g in inputs])


def _adaptive(f: Field, x: torch.Tensor, output_size) -> Field:
    n = len(f.rf)
    size_in = tuple(x.shape[-n:])
    size_out = ntuple(output_size, n)
    size_out = tuple(size_in[i] if o is None else o for i, o in enumerate(size_out))
    if all(o == 1 for o in size_out) and any(i > 1 for i in size_in):
        return replace(f, glob=True)
    # PyTorch's windows: start floor(i*in/out), end ceil((i+1)*in/out); the widest is ceil(in/out)
    kernel = tuple(math.ceil(size_in[i] / size_out[i]) for i in range(n))
    stride = tuple(max(size_in[i] // size_out[i], 1) for i in range(n))
    return _window(f, kernel, stride, 1)


def _view(f: Field, x: torch.Tensor, out, n: int) -> Field:
    """Views keep the field; one that folds a map of several positions into a vector records the
    extent of the whole map, which the next linear layer sees."""
    if not isinstance(out, torch.Tensor) or not n or out.dim() >= x.dim():
        return f
    spatial = tuple(x.shape[-n:])
    if math.prod(spatial) <= 1:
        return f
    extent = tuple(f.rf[i] + (spatial[i] - 1) * f.jump[i] for i in range(n))
    return replace(f, flat=extent)


def _getitem(f: Field, x: torch.Tensor, index, n: int) -> Field:
    """Indexing: a slice with a step (``x[:, :, ::2, ::2]``, the CIFAR ResNets' shortcut)
    subsamples, multiplying the jump; anything fancier keeps the field as it is."""
    idx = index if isinstance(index, tuple) else (index,)
    if not all(isinstance(i, slice) or i is Ellipsis for i in idx):
        return f  # integers, None or tensors move the dimensions: keep the field
    if any(i is Ellipsis for i in idx):
        k = next(j for j, i in enumerate(idx) if i is Ellipsis)
        idx = idx[:k] + (slice(None),) * (x.dim() - len(idx) + 1) + idx[k + 1 :]
    steps = [1] * x.dim()
    for d, i in enumerate(idx[: x.dim()]):
        steps[d] = i.step or 1
    first = x.dim() - n
    return replace(f, jump=tuple(f.jump[j] * steps[first + j] for j in range(n)))
