"""Per-operation rules: which ops the analyzer sees, their multiply-accumulates, parameter formulas.

Conventions (also in docs/anatomy.md):

- A MAC is one multiply and one add. FLOPs = 2 x MACs, always labelled as such.
- Convolution: ``N * Cout * Hout * Wout * (Cin / groups) * kh * kw``; the bias add is not counted.
- Linear, matmul, mm, bmm, addmm: ``(elements of the output) * (length of the summed dimension)``.
- Backward (training step): a convolution or linear layer (and conv-transpose, matmul, mm, bmm,
  addmm, einsum) costs its forward MACs once for the gradient of each operand that needs one: the
  input gradient (not needed for the image itself, nor below frozen layers) and the weight
  gradient (when the weight is trainable). Attention costs twice its forward. Everything else
  counts 0, as in the forward pass.
- Everything else (batch norm, activations, pooling, elementwise add/mul, softmax, concatenation,
  ...) counts 0 MACs and is listed in ``uncounted`` by op name and number of calls, so nothing is
  silently zero.
- View and metadata ops (``view``, ``flatten``, ``size``, indexing, ...) move no data and are not
  rows at all; they only carry the receptive field through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.overrides import resolve_name


def _ops(names: str) -> frozenset[str]:
    """A set of op names from a whitespace-separated list."""
    return frozenset(names.split())


# Ops that return a view or metadata: no row, no cost; the receptive field passes through.
VIEW_OPS = _ops("""view view_as reshape reshape_as flatten unflatten permute transpose t squeeze
    unsqueeze expand expand_as contiguous getitem chunk split split_with_sizes unbind narrow select
    movedim swapaxes swapdims as_strided detach detach_ unfold_view tensor_split hsplit vsplit
    unsafe_chunk unsafe_split ravel T mT to type type_as float double half bfloat16 cpu cuda
    clone""")

# Ops that return metadata or Python values, or are bookkeeping: ignored entirely.
META_OPS = _ops("""
    size dim numel shape __get__ get stride storage_offset is_contiguous element_size
    __len__ __bool__ __int__ __float__ __index__ __format__ __repr__ __iter__ __hash__ item tolist
    data_ptr untyped_storage requires_grad_ retain_grad register_hook is_floating_point
    is_complex has_torch_function __contains__ ndimension nelement new_empty new_zeros new_ones
    new_full new_tensor empty_like zeros_like ones_like full_like rand_like randn_like normal_
    uniform_ bernoulli_ zero_ fill_ long int bool get_device is_meta is_cuda""")

# Ops that change nothing in evaluation mode: rows (when they are modules) but nothing uncounted.
IDENTITY_OPS = _ops("dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout")

CONV_OPS = _ops("conv1d conv2d conv3d")
CONV_T_OPS = _ops("conv_transpose1d conv_transpose2d conv_transpose3d")
MAX_POOL_OPS = _ops(
    "max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices "
    "max_pool3d_with_indices"
)
AVG_POOL_OPS = _ops("avg_pool1d avg_pool2d avg_pool3d lp_pool1d lp_pool2d lp_pool3d")
ADAPTIVE_POOL_OPS = _ops(
    "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d "
    "adaptive_max_pool2d adaptive_max_pool3d adaptive_max_pool1d_with_indices "
    "adaptive_max_pool2d_with_indices adaptive_max_pool3d_with_indices"
)
REDUCE_OPS = _ops("mean sum amax amin max min std var logsumexp prod nanmean nansum norm")
MATMUL_OPS = _ops(
    "matmul mm bmm addmm baddbmm addbmm linear bilinear einsum scaled_dot_product_attention "
    "multi_head_attention_forward"
)

# Python operator names -> the torch op they call (in-place forms keep a trailing underscore).
_DUNDER = {
    "add": "add",
    "radd": "add",
    "iadd": "add_",
    "sub": "sub",
    "rsub": "sub",
    "isub": "sub_",
    "mul": "mul",
    "rmul": "mul",
    "imul": "mul_",
    "truediv": "div",
    "rtruediv": "div",
    "itruediv": "div_",
    "matmul": "matmul",
    "rmatmul": "matmul",
    "getitem": "getitem",
    "neg": "neg",
    "pow": "pow",
    "rpow": "pow",
}


def op_name(func) -> str:
    """A short, stable name for a torch function: ``"conv2d"``, ``"add"``, ``"add_"``, ``"cat"``."""
    try:
        full = resolve_name(func) or getattr(func, "__name__", repr(func))
    except Exception:  # some wrappers have no resolvable name
        full = getattr(func, "__name__", repr(func))
    parts = full.split(".")
    name = parts[-1]
    if name == "__get__" and len(parts) >= 2:  # property access such as ``x.shape``
        return "__get__"
    if name.startswith("__") and name.endswith("__"):
        core = name.strip("_")
        return _DUNDER.get(core, name)
    if name.startswith("_") and name.lstrip("_") in MAX_POOL_OPS | ADAPTIVE_POOL_OPS:
        name = name.lstrip("_")  # F.max_pool2d dispatches through F._max_pool2d
    return name


def base_op(name: str) -> str:
    """The op without its in-place underscore: ``relu_`` -> ``relu``."""
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def arg(args: Sequence, kwargs: dict, index: int, key: str, default=None):
    """Argument ``key`` of a call, given positionally at ``index`` or by keyword."""
    if key in kwargs:
        return kwargs[key]
    if len(args) > index:
        return args[index]
    return default


def ntuple(value, n: int) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)``; a sequence is returned as a tuple (its last ``n`` entries)."""
    if value is None:
        return (1,) * n
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    return value[-n:] if len(value) >= n else value * n


def count_macs(name: str, args: Sequence, kwargs: dict, out: torch.Tensor | None) -> int | None:
    """Multiply-accumulates of one call for the whole batch, or ``None`` if this op is not counted.

    ``out`` is the call's (first) output tensor.
    """
    op = base_op(name)
    if out is None:
        return None
    if op in CONV_OPS:
        weight = arg(args, kwargs, 1, "weight")
        # Each output element sums (Cin / groups) * kh * kw products: the weight's dims 1..
        return out.numel() * math.prod(weight.shape[1:])
    if op in CONV_T_OPS:
        x, weight = args[0], arg(args, kwargs, 1, "weight")
        # Each input element is scattered into (Cout / groups) * kh * kw outputs.
        return x.numel() * math.prod(weight.shape[1:])
    if op == "linear":
        weight = arg(args, kwargs, 1, "weight")
        return out.numel() * weight.shape[-1]
    if op in ("matmul", "mm", "bmm"):
        a = args[0]
        return out.numel() * a.shape[-1]
    if op in ("addmm", "baddbmm", "addbmm"):
        a = arg(args, kwargs, 1, "mat1" if op == "addmm" else "batch1")
        if op == "addbmm":  # sums over the batch as well
            return out.numel() * a.shape[-1] * a.shape[0]
        return out.numel() * a.shape[-1]
    if op == "scaled_dot_product_attention":
        q, k, v = args[0], arg(args, kwargs, 1, "key"), arg(args, kwargs, 2, "value")
        # softmax(Q K^T) V: L*S*E products for the scores, L*S*Ev for the weighted sum
        return math.prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    if op == "multi_head_attention_forward":
        return _mha_macs(args, kwargs)
    if op == "einsum":
        return _einsum_macs(args)
    return None


# Ops whose backward computes one product of the forward's size per operand needing a gradient:
# the operands that count, by position and keyword (input and weight, or the two factors).
_OPERANDS = {
    **dict.fromkeys(CONV_OPS | CONV_T_OPS | {"linear"}, ((0, "input"), (1, "weight"))),
    "matmul": ((0, "input"), (1, "other")),
    **dict.fromkeys(("mm", "bmm"), ((0, "input"), (1, "mat2"))),
    "addmm": ((1, "mat1"), (2, "mat2")),
    **dict.fromkeys(("baddbmm", "addbmm"), ((1, "batch1"), (2, "batch2"))),
}


def count_backward_macs(
    name: str, args: Sequence, kwargs: dict, forward_macs: int, needs_grad
) -> int:
    """Multiply-accumulates of one call's backward, given its forward MACs.

    ``needs_grad(tensor)`` says whether autograd would compute a gradient for that operand: a
    trainable weight, or an activation that depends on one. Ops counted 0 forward count 0 here.
    """
    op = base_op(name)
    if op in _OPERANDS:
        operands = [arg(args, kwargs, i, key) for i, key in _OPERANDS[op]]
        return forward_macs * sum(bool(t is not None and needs_grad(t)) for t in operands)
    if op == "einsum":
        ops = args[1:]
        if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
            ops = tuple(ops[0])
        return forward_macs * sum(bool(needs_grad(t)) for t in ops)
    if op in ("scaled_dot_product_attention", "multi_head_attention_forward"):
        # dQ, dK from the scores' gradient, dV and that gradient from the output's: twice forward
        tensors = [t for t in args if isinstance(t, torch.Tensor)]
        return 2 * forward_macs if any(needs_grad(t) for t in tensors) else 0
    return 0


def _mha_macs(args: Sequence, kwargs: dict) -> int:
    """``F.multi_head_attention_forward`` on (L, N, E) queries and (S, N, E) keys/values:
    input projections, scores, weighted sum, output projection."""
    q, k = args[0], args[1]
    e = q.shape[-1]
    n = q.shape[1] if q.dim() == 3 else 1
    lq, s = q.shape[0], k.shape[0]
    proj = lq * n * e * e + 2 * s * n * k.shape[-1] * e  # Q, K, V projections
    attn = 2 * n * lq * s * e  # Q K^T and the weighted sum of V, over all heads
    out = lq * n * e * e  # output projection
    return proj + attn + out


def _einsum_macs(args: Sequence) -> int | None:
    """A two-operand ``einsum``: one MAC per combination of all its indices."""
    equation, ops = args[0], args[1:]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    if not isinstance(equation, str) or len(ops) != 2 or "..." in equation:
        return None
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, t in zip(inputs, ops, strict=False):
        for letter, size in zip(letters, t.shape, strict=False):
            sizes[letter] = size
    return math.prod(sizes.values())


def param_formula(shapes: list[tuple[str, tuple[int, ...]]]) -> str:
    """The formula for a list of ``(kind, shape)`` parameters of one row, in the lecture's style.

    A weight ``[Cout, Cin, kh, kw]`` with a bias ``[Cout]`` reads ``(kh*kw*Cin+1)*Cout``, as in
    ``(11*11*3+1)*96``; a linear layer ``(in+1)*out``; anything else a sum of shape products, with
    equal terms gathered (``2*64`` for a batch norm's weight and bias).
    """
    if not shapes:
        return ""
    kinds = [k for k, _ in shapes]
    if len(shapes) <= 2 and kinds[0] == "weight" and len(shapes[0][1]) >= 2:
        w = shapes[0][1]
        fan_in = "*".join(str(s) for s in list(w[2:]) + [w[1]])
        if len(shapes) == 2 and kinds[1] == "bias" and shapes[1][1] == (w[0],):
            return f"({fan_in}+1)*{w[0]}"
        if len(shapes) == 1:  # no bias: the notes' "(3*3*64)*64"
            return f"({fan_in})*{w[0]}" if "*" in fan_in else f"{fan_in}*{w[0]}"
    terms: dict[str, int] = {}
    for _, shape in shapes:
        term = "*".join(str(s) for s in shape) if shape else "1"
        terms[term] = terms.get(term, 0) + 1
    return "+".join(t if n == 1 else f"{n}*{t}" for t, n in terms.items())
