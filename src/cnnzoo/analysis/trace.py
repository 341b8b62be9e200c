"""The meta-device pass: run a model once on shapes only and record every op it performs.

The model's own tensors are never touched: the forward runs through ``torch.func.functional_call``
with meta-device stand-ins for its parameters and buffers. A ``TorchFunctionMode`` sees every torch
op (the modules' own ``F.conv2d`` as well as ``x + y``, ``torch.cat``, ``@``), and global module
hooks, registered for the pass and removed in ``finally``, tell which module is running, so each op
is attributed to the innermost one. Ops inside a leaf module make one row for that module; ops run
directly by a container (a residual ``+``, an Inception ``torch.cat``) make rows of their own.
"""

from __future__ import annotations

import linecache
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules import module as module_hooks
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import CnnzooError
from . import rf as rfmod
from .rules import (
    IDENTITY_OPS,
    META_OPS,
    VIEW_OPS,
    base_op,
    count_backward_macs,
    count_macs,
    op_name,
)


@dataclass
class Row:
    """One row of the report while it is being built (``report.LayerStats`` is the public form)."""

    name: str  # module path, or "<container path>.<op>" for a functional op
    type: str  # module class, or the op name
    depth: int  # number of components of the module path
    macs: int = 0
    backward_macs: int = 0  # the training step's gradients of this row's inputs and weights
    params: list[tuple[str, str, tuple[int, ...], int]] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)  # names of parameters counted on another row
    uncounted: dict[str, int] = field(default_factory=dict)
    # The graph: rows whose outputs this row consumed (-1: the model's input), in the order first
    # seen, and the shape of each tensor as consumed (after any view such as a flatten).
    inputs: list[int] = field(default_factory=list)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    output: torch.Tensor | None = None
    field: rfmod.Field | None = None
    inplace: bool = False


@dataclass
class Trace:
    rows: list[Row]
    input: torch.Tensor
    output_fields: list[rfmod.Field]
    storages: dict[int, int]  # storage id -> bytes, for every row output and the input
    unused_params: list[str]


def meta_state(
    model: nn.Module, dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], dict[int, str]]:
    """Meta stand-ins for the model's parameters and buffers, and ``id(stand-in) -> name`` for the
    parameters. Shared tensors appear once (``named_parameters`` removes duplicates) and
    ``functional_call`` ties the other names to the same stand-in."""
    state: dict[str, torch.Tensor] = {}
    names: dict[int, str] = {}

    def like(t: torch.Tensor) -> torch.Tensor:
        # Floating tensors take the analysis dtype, as ``model.to(dtype)`` would make them.
        cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
        return torch.empty_like(t, device="meta", dtype=cast)

    for name, p in model.named_parameters():
        t = like(p).requires_grad_(p.requires_grad)
        state[name] = t
        names[id(t)] = name
    for name, b in model.named_buffers():
        state[name] = like(b)
    return state, names


@contextmanager
def temporarily_training(model: nn.Module, mode: bool) -> Iterator[None]:
    """Set every module's ``training`` flag to ``mode`` and restore each one afterwards, exactly.

    The attribute is set directly rather than through ``train()``, which a model may override.
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        for m, _ in flags:
            m.training = mode
        yield
    finally:
        for m, flag in flags:
            m.training = flag


class NeedsValuesError(CnnzooError):
    """The model's forward reads tensor values (``if x.sum() > 0``, ``.item()``), which a pass on
    shapes only cannot provide."""


# Tensor methods and torch functions whose result depends on the values in a tensor, not only on
# its shape: Python conversions (a branch, an index, a number) and ops whose output size depends
# on the data. On the meta device there are no values, so each of them fails there.
_VALUE_METHODS = ("__bool__", "__int__", "__float__", "__index__", "__complex__", "item",
                  "tolist", "numpy", "equal", "nonzero", "unique", "masked_select",
                  "repeat_interleave")  # fmt: skip
_NEEDS_VALUES = {getattr(torch.Tensor, n) for n in _VALUE_METHODS if hasattr(torch.Tensor, n)} | {
    getattr(torch, n) for n in _VALUE_METHODS if hasattr(torch, n)
}
_WHAT = {"__bool__": "a Python if/while on a tensor", "__index__": "a tensor used as an index",
         "__int__": "int(tensor)", "__float__": "float(tensor)", "item": ".item()",
         "tolist": ".tolist()", "numpy": ".numpy()"}  # fmt: skip
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


def _is_library(filename: str) -> bool:
    """Whether a frame of ``filename`` belongs to torch, this package or the standard library."""
    if filename.startswith((_TORCH_DIR, _HERE)):
        return True
    installed = "site-packages" in filename or "dist-packages" in filename
    return filename.startswith(_STDLIB) and not installed


def _needs_values(func, args, kwargs) -> bool:
    if func in _NEEDS_VALUES:
        return True
    if getattr(func, "__name__", "") == "__getitem__":  # x[mask]: the size depends on the mask
        return any(t.dtype == torch.bool for t in _tensors((args[1:], kwargs)))
    return False


def _model_line() -> str:
    """``file:line (`source`)`` of the innermost caller outside torch, this package and the
    standard library: the line of the model's forward that asked for a value."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not _is_library(filename):
            source = linecache.getline(filename, frame.f_lineno).strip()
            code = f" (`{source[:80]}`)" if source else ""
            return f"{frame.f_code.co_filename}:{frame.f_lineno}{code}"
        frame = frame.f_back
    return "an unknown line"


# Normalisations whose output has their input's shape (evaluated on shapes only in the pass).
_SAME_SHAPE = {F.batch_norm, F.instance_norm, F.group_norm, F.layer_norm}


def _tensors(obj) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


class Recorder(TorchFunctionMode):
    """Sees every torch op of the pass and turns it into rows."""

    def __init__(self, model: nn.Module, param_names: dict[int, str], x: torch.Tensor) -> None:
        super().__init__()
        self.names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
        self.names.setdefault(id(model), "")
        self.leaf = {id(m): not any(True for _ in m.children()) for m in model.modules()}
        self.param_names = param_names
        self.attributed: dict[str, str] = {}  # parameter name -> row that counts it
        self.stack: list[tuple[nn.Module, Row | None]] = []
        self.rows: list[Row] = []
        self.calls: dict[str, int] = {}
        self.fields: dict[int, rfmod.Field] = {id(x): rfmod.input_field(x)}
        self.keep: list[torch.Tensor] = [x]  # keeps ids unique while the pass runs
        self.storages: dict[int, int] = {}
        self._note_storage(x)
        # The graph: which row made each tensor (None: the model's input), what each row consumed.
        self.producer: dict[int, Row | None] = {id(x): None}
        self.sources: dict[int, list[tuple[Row | None, tuple[int, ...]]]] = {}
        # Tensors autograd would track in training: trainable weights and what depends on them.
        # The pass runs under no_grad, so this is followed here rather than read from the tensors.
        self.tracked: set[int] = set()

    # --- module tracking (global hooks, installed by ``record``) ---
    def pre_hook(self, module: nn.Module, args) -> None:
        parent = self._current_leaf_row()
        if parent is not None:  # a module called from inside a leaf: its ops stay in that row
            self.stack.append((module, None))
            return
        name = self.names.get(id(module))
        if name is None:  # made on the fly (``self.classifier[:-1]``), not part of the model
            name = f"{self._container_name()}.<{type(module).__name__}>".lstrip(".")
        leaf = self.leaf.get(id(module))
        if leaf is None:
            leaf = not any(True for _ in module.children())
        row = None
        if leaf:
            row = Row(name=self._unique(name), type=type(module).__name__, depth=_depth(name))
            self._flow(row, _tensors(args), [])
        self.stack.append((module, row))

    def post_hook(self, module: nn.Module, args, output) -> None:
        if not self.stack:
            return
        mod, row = self.stack.pop()
        if row is None or mod is not module:
            return
        # A leaf's own parameters that no op consumed are still the leaf's.
        for pname, p in module.named_parameters(recurse=False):
            self._attribute(row, p, pname)
        outs = _tensors(output)
        self._flow(row, [], outs)
        row.output = outs[0] if outs else None
        if row.output is not None:
            row.field = self.fields.get(id(row.output))
            self._note_storage(row.output)
        self.rows.append(row)

    def _current_leaf_row(self) -> Row | None:
        for _, row in reversed(self.stack):
            if row is not None:
                return row
        return None

    def _container_name(self) -> str:
        """Path of the innermost running module that belongs to the model."""
        for module, _ in reversed(self.stack):
            if id(module) in self.names:
                return self.names[id(module)]
        return ""

    def _unique(self, name: str) -> str:
        k = self.calls.get(name, 0) + 1
        self.calls[name] = k
        return name if k == 1 else f"{name}#{k}"

    # --- ops ---
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SAME_SHAPE and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            # PyTorch's meta batch norm is a slow Python decomposition; the shape is all we need.
            out = torch.empty_like(args[0])
        else:
            try:
                out = self.run_op(func, args, kwargs)
            except Exception as err:
                if _needs_values(func, args, kwargs):
                    name = getattr(func, "__name__", str(func))
                    what = _WHAT.get(name, f"{name}(), whose output size depends on the data")
                    raise NeedsValuesError(
                        f"the model's forward needs real tensor values at {_model_line()}: "
                        f"{what}; the analysis runs on the meta device, on shapes only, where "
                        f"there are none. Make that step depend on shapes only (or on a "
                        f"constructor argument)"
                    ) from None
                err.cnnzoo_op_error = True  # the model's op failed, not the analyzer
                raise
        if not self.stack:  # outside the model (functional_call's own bookkeeping)
            return out
        name = op_name(func)
        if name in META_OPS or name == "__get__":
            return out
        inputs = _tensors((args, kwargs))
        if not inputs:  # a factory (torch.zeros...): a constant with no field
            return out
        outs = _tensors(out)
        if any(self.needs_grad(t) for t in inputs):
            for t in outs:
                self.tracked.add(id(t))
                self.keep.append(t)
        known = [(t, self.fields[id(t)]) for t in inputs if id(t) in self.fields]
        field_ = rfmod.propagate(name, args, kwargs, known, out)
        if field_ is not None:
            for t in outs:
                self.fields[id(t)] = field_
                self.keep.append(t)
        if name in VIEW_OPS and outs:
            self._flow(self._current_leaf_row(), inputs, outs)
        if name in VIEW_OPS or not outs:
            return out
        row = self._current_leaf_row()
        if row is None:  # a functional op run by a container: a row of its own
            parent = self._container_name()
            label = base_op(name)
            row = Row(
                name=self._unique(f"{parent}.{label}".lstrip(".")),
                type=label,
                depth=_depth(parent) + 1,
            )
            row.output = outs[0]
            row.field = field_
            row.inplace = name.endswith("_") or kwargs.get("inplace") is True
            self._note_storage(outs[0])
            self.rows.append(row)
        self._flow(row, inputs, outs)
        for t in inputs:
            if id(t) in self.param_names:
                self._attribute(row, t, self.param_names[id(t)])
        macs = count_macs(name, args, kwargs, outs[0])
        if macs is None:
            if base_op(name) not in IDENTITY_OPS:
                key = base_op(name)
                row.uncounted[key] = row.uncounted.get(key, 0) + 1
        else:
            row.macs += macs
            row.backward_macs += count_backward_macs(name, args, kwargs, macs, self.needs_grad)
        return out

    def needs_grad(self, t) -> bool:
        """Whether a training step would compute the gradient of ``t``."""
        return isinstance(t, torch.Tensor) and (t.requires_grad or id(t) in self.tracked)

    def run_op(self, func, args, kwargs):
        """Call one op (a subclass may time it)."""
        return func(*args, **kwargs)

    def _flow(self, row: Row | None, inputs: list[torch.Tensor], outs: list[torch.Tensor]) -> None:
        """Record the graph: ``row`` consumed ``inputs`` (tensors some row or the input made) and
        made ``outs``. With no row (a view run by a container), the outputs are the first known
        input's, seen through the view."""
        known = [t for t in inputs if id(t) in self.producer]
        if row is None:
            if known:
                for t in outs:
                    self.producer[id(t)] = self.producer[id(known[0])]
                    self.keep.append(t)
            return
        srcs = self.sources.setdefault(id(row), [])
        for t in known:
            src = self.producer[id(t)]
            if src is not row and all(s is not src for s, _ in srcs):
                srcs.append((src, tuple(t.shape)))
        for t in outs:
            self.producer[id(t)] = row
            self.keep.append(t)

    def _attribute(self, row: Row, p: torch.Tensor, local: str) -> None:
        full = self.param_names.get(id(p))
        if full is None:
            return
        if full in self.attributed:
            if self.attributed[full] != row.name and full not in row.shared:
                row.shared.append(full)
            return
        self.attributed[full] = row.name
        kind = local.rsplit(".", 1)[-1]
        row.params.append((full, kind, tuple(p.shape), p.numel()))

    def _note_storage(self, t: torch.Tensor) -> None:
        try:
            s = t.untyped_storage()
            self.storages[s._cdata] = s.nbytes()
        except (RuntimeError, NotImplementedError):  # sparse or other exotic tensors
            self.storages[id(t)] = t.numel() * t.element_size()


def _depth(name: str) -> int:
    return len(name.split(".")) if name else 0


@contextmanager
def module_tracking(rec: Recorder) -> Iterator[None]:
    """Global module hooks that tell ``rec`` which module runs, removed on the way out."""
    handles = [
        module_hooks.register_module_forward_pre_hook(rec.pre_hook),
        module_hooks.register_module_forward_hook(rec.post_hook),
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def record(model: nn.Module, x_shape: tuple[int, ...], dtype: torch.dtype) -> Trace:
    """Run ``model`` once on a meta input of ``x_shape`` in evaluation mode and record its ops."""
    state, param_names = meta_state(model, dtype)
    x = torch.empty(x_shape, dtype=dtype, device="meta")
    rec = Recorder(model, param_names, x)
    with module_tracking(rec), temporarily_training(model, False), torch.no_grad(), rec:
        out = functional_call(model, state, (x,))
    index = {id(r): i for i, r in enumerate(rec.rows)}
    for r in rec.rows:
        for src, shape in rec.sources.get(id(r), []):
            if src is None or id(src) in index:
                r.inputs.append(-1 if src is None else index[id(src)])
                r.input_shapes.append(shape)
    fields = [rec.fields[id(t)] for t in _tensors(out) if id(t) in rec.fields]
    unused = [n for n in param_names.values() if n not in rec.attributed]
    return Trace(rec.rows, x, fields, rec.storages, unused)
