"""Measured anatomy: the time of every row of the analyzer's table, beside its arithmetic.

``profile(model, input_size)`` runs the model for real and times each op, attributing it to a row
exactly as the analyzer does (the same ``TorchFunctionMode`` and module hooks, on real tensors):
an op is timed alone with ``time.perf_counter`` (CPU ops are synchronous; on CUDA the device is
synchronised around each). With ``train=True`` the backward pass is timed too: every autograd node
a row's ops created is claimed by that row, and hooks before and after each node time it.

The whole step (forward, or forward and backward) is timed separately without any instrument, in
alternation with the instrumented runs so both see the same machine. What the rows do not account
for (Python between ops, views run by containers, the autograd engine's own work) is the
"outside layers" line: the whole step minus the sum of the rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CnnzooError
from . import analyze
from .ceilings import machine
from .memory import device_memory
from .report import LayerStats, Report, _bytes, _count
from .trace import Recorder, Row, _tensors, module_tracking, temporarily_training

FORMATS = ("table", "markdown", "csv", "json")


@dataclass
class ProfileRow:
    row: int  # index into analyze(...).layers
    module: str  # the row's name
    type: str  # module class or op name, as in the analyzer's table
    forward_ms: float  # median (or mean: Profile.statistic) over the repeats
    forward_spread_ms: float  # interquartile range over the repeats
    backward_ms: float | None  # None unless train
    backward_spread_ms: float | None
    flops: int  # 2 x MACs of the passes timed (forward, or forward and backward)
    bytes: int  # forward traffic: inputs read, output written, weights read
    intensity: float  # forward FLOPs per byte of that traffic
    share: float = 0.0  # of the whole measured step

    @property
    def ms(self) -> float:
        return self.forward_ms + (self.backward_ms or 0.0)

    @property
    def gflops(self) -> float:
        """Achieved rate: the timed passes' FLOPs over their time."""
        return self.flops / (self.ms * 1e6) if self.ms > 0 else 0.0


@dataclass
class Profile:
    model: str
    input_size: tuple[int, ...]
    batch: int
    train: bool
    machine: str
    rows: list[ProfileRow]
    outside_layers_ms: float  # the whole step minus the sum of the rows
    total_ms: float  # median (or mean) of the uninstrumented whole step
    total_spread_ms: float
    notes: list[str] = field(default_factory=list)
    statistic: str = "median"  # of the repeats: "median" or "mean"

    def to_dict(self) -> dict:
        """The JSON the explorer reads (see docs/anatomy.md)."""
        rows = [
            {
                "row": r.row,
                "module": r.module,
                "forward_ms": r.forward_ms,
                "forward_spread_ms": r.forward_spread_ms,
                "backward_ms": r.backward_ms,
                "backward_spread_ms": r.backward_spread_ms,
                "gflops": r.gflops,
                "bytes": r.bytes,
                "intensity": r.intensity,
                "share": r.share,
            }
            for r in self.rows
        ]
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "batch": self.batch,
            "train": self.train,
            "machine": self.machine,
            "rows": rows,
            "outside_layers_ms": self.outside_layers_ms,
            "total_ms": self.total_ms,
            "statistic": self.statistic,
            "notes": self.notes,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        buf = io.StringIO()
        rows = self.to_dict()["rows"]
        w = csv.DictWriter(buf, fieldnames=["type", *rows[0]] if rows else ["row"])
        w.writeheader()
        for r, d in zip(self.rows, rows, strict=True):
            w.writerow({"type": r.type, **d})
        w.writerow({"module": "outside layers", "forward_ms": self.outside_layers_ms})
        w.writerow({"module": "total", "forward_ms": self.total_ms})
        return buf.getvalue()

    def _cells(self) -> list[tuple[str, ...]]:
        head = (
            "row",
            "layer",
            "type",
            "forward ms",
            "backward ms",
            "GFLOP/s",
            "bytes",
            "FLOP/B",
            "share",
        )
        cells = [head]
        for r in self.rows:
            bwd = "" if r.backward_ms is None else _ms(r.backward_ms, r.backward_spread_ms)
            cells.append(
                (
                    str(r.row),
                    r.module,
                    r.type,
                    _ms(r.forward_ms, r.forward_spread_ms),
                    bwd,
                    f"{r.gflops:.1f}" if r.flops else "",
                    _count(r.bytes),
                    f"{r.intensity:.1f}" if r.flops else "",
                    f"{100 * r.share:.1f}%",
                )
            )
        share = self.outside_layers_ms / self.total_ms if self.total_ms else 0.0
        cells.append(
            (
                "",
                "outside layers",
                "",
                f"{self.outside_layers_ms:.3f}",
                "",
                "",
                "",
                "",
                f"{100 * share:.1f}%",
            )
        )
        step = "forward + backward" if self.train else "forward"
        cells.append(
            (
                "",
                f"measured step ({step})",
                "",
                _ms(self.total_ms, self.total_spread_ms),
                "",
                "",
                "",
                "",
                "100%",
            )
        )
        if not self.train:
            cells = [c[:4] + c[5:] for c in cells]
        return cells

    def _title(self) -> str:
        c, h, w = (*self.input_size, 1, 1)[:3]
        mode = "training step" if self.train else "forward"
        return (
            f"{self.model}, input {h}x{w}x{c}, batch {self.batch}, {mode}; {self.statistic}s "
            f"(+- interquartile range) on {self.machine}"
        )

    def to_table(self) -> str:
        cells = self._cells()
        widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        lines = [self._title(), ""]
        for k, c in enumerate(cells):
            lines.append(
                "  ".join(
                    v.rjust(widths[i]) if i >= 3 else v.ljust(widths[i]) for i, v in enumerate(c)
                ).rstrip()
            )
            if k == 0 or k == len(cells) - 3:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines + [*self.notes, ""])

    def to_markdown(self) -> str:
        cells = self._cells()
        lines = [
            f"**{self._title()}**",
            "",
            "| " + " | ".join(cells[0]) + " |",
            "|" + "---|" * 3 + "---:|" * (len(cells[0]) - 3),
        ]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"

    def render(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise CnnzooError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        return {
            "json": lambda: self.to_json() + "\n",
            "csv": self.to_csv,
            "markdown": self.to_markdown,
            "table": self.to_table,
        }[fmt]()


def _ms(value: float, spread: float | None) -> str:
    return f"{value:.3f} +- {spread or 0.0:.3f}"


class _Forget(dict):
    """A mapping that stores nothing (see ``_TimedRecorder``)."""

    def __setitem__(self, key, value) -> None:
        pass

    def append(self, value) -> None:
        pass


class _TimedRecorder(Recorder):
    """The analyzer's recorder on real tensors, timing each op and the row it belongs to.

    Only the rows are needed here, not the receptive fields or the graph, so the recorder keeps
    no tensor alive: holding every output until the end of the step would change what the
    allocator does (fresh memory to fault in instead of freed blocks reused) and slow the ops
    timed, ``torch.cat`` tenfold.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, sync: Callable[[], None]) -> None:
        super().__init__(model, {id(p): n for n, p in model.named_parameters()}, x)
        self.fields, self.producer, self.keep = _Forget(), _Forget(), _Forget()
        self.sync = sync
        self.seconds: dict[int, float] = {}  # id(row) -> forward seconds
        self.nodes: dict[object, Row] = {}  # autograd node -> the row whose op made it
        self.elapsed = 0.0

    def post_hook(self, module: nn.Module, args, output) -> None:
        before = len(self.rows)
        super().post_hook(module, args, output)
        if len(self.rows) > before:
            self.rows[-1].output = None

    def run_op(self, func, args, kwargs):
        self.sync()
        start = time.perf_counter()
        out = func(*args, **kwargs)
        self.sync()
        self.elapsed = time.perf_counter() - start
        return out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.elapsed, before = 0.0, len(self.rows)
        out = super().__torch_function__(func, types, args, kwargs)
        # A functional op run by a container made a row of its own; others belong to a leaf's.
        row = self.rows[-1] if len(self.rows) > before else self._current_leaf_row()
        if len(self.rows) > before:
            row.output = None  # let the op's output be freed when the model is done with it
        if row is not None and self.stack:
            self.seconds[id(row)] = self.seconds.get(id(row), 0.0) + self.elapsed
            if torch.is_grad_enabled():
                self._claim(row, _tensors((args, kwargs or {})), _tensors(out))
        return out

    def _claim(self, row: Row, inputs: list[torch.Tensor], outs: list[torch.Tensor]) -> None:
        """Give ``row`` the autograd nodes its op created: those between its outputs' nodes and
        its inputs' (a weight's gradient accumulation included)."""
        stop = {t.grad_fn for t in inputs if t.grad_fn is not None}
        todo = [t.grad_fn for t in outs if t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node in stop or node in self.nodes:
                continue
            self.nodes[node] = row
            todo.extend(n for n, _ in node.next_functions if n is not None)


def _time_nodes(nodes: dict[object, Row], sync: Callable[[], None]):
    """Hooks around every claimed node: id(row) -> backward seconds (filled as the nodes run), and
    the hooks' handles. A weight's gradient accumulator outlives the step, so the caller removes
    the handles after the backward pass."""
    seconds: dict[int, float] = {}
    starts: dict[object, float] = {}
    handles = []
    for node, row in nodes.items():

        def pre(grad_outputs, node=node):
            sync()
            starts[node] = time.perf_counter()

        def post(grad_inputs, grad_outputs, node=node, key=id(row)):
            sync()
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - starts[node]

        handles += [node.register_prehook(pre), node.register_hook(post)]
    return seconds, handles


def _backward(out) -> None:
    outs = [t for t in _tensors(out) if t.requires_grad]
    torch.autograd.backward(outs, [torch.ones_like(t) for t in outs])


def profile(
    model: nn.Module,
    input_size: Sequence[int] = (3, 224, 224),
    batch: int = 1,
    train: bool = False,
    repeats: int = 10,
    warmup: int = 2,
    name: str | None = None,
    statistic: str = "median",
) -> Profile:
    """Time every row of ``analyze(model, input_size, batch)`` on the model's own device.

    ``train=False`` times the evaluation-mode forward under ``no_grad``; ``train=True`` a training
    step (training mode, forward and backward of a gradient of ones; the model's own gradients are
    put back afterwards). Times are medians over ``repeats`` after ``warmup`` runs, with their
    interquartile range as the spread; ``statistic="mean"`` gives means, which add up however a
    shared machine's stalls fall (the mean step is the sum of its parts' means).
    """
    if isinstance(model, str):  # a name: the command line's `cnnzoo profile NAME`
        raise CnnzooError(
            f"profile needs a built model with real weights: profile(cnnzoo.create_model("
            f"{model!r}), ...), or `cnnzoo profile {model}`"
        )
    if statistic not in STATISTICS:
        raise CnnzooError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if repeats < 1 or warmup < 0:
        raise CnnzooError(
            f"repeats must be at least 1 and warmup at least 0, got {repeats}, {warmup}"
        )
    report = analyze(model, input_size, batch_size=batch, name=name)
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    if device.type == "meta":
        raise CnnzooError("profile needs a model with real weights, not one on the meta device")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    check_memory(report, train, device, dtype)
    x = torch.randn(batch, *report.input_size, generator=torch.Generator().manual_seed(0))
    x = x.to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    grads = [(p, p.grad) for p in model.parameters()]
    plain, timed = [], []
    try:
        with temporarily_training(model, train), torch.set_grad_enabled(train):
            for k in range(warmup + repeats):
                plain.append(_whole_step(model, x, train, sync))
                timed.append(_instrumented_step(model, x, train, sync))
                if k < warmup:
                    plain.pop(), timed.pop()
    except ValueError as err:  # batch norm on one value per channel in training mode
        raise CnnzooError(
            f"{report.model} cannot train on a batch of {batch}: "
            f"{str(err).splitlines()[0]}; use a larger batch"
        ) from None
    finally:
        for p, g in grads:
            p.grad = g
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    return _summarise(report, plain, timed, train, device, sizes, statistic)


def check_memory(report: Report, train: bool, device: torch.device, dtype: torch.dtype) -> None:
    """Refuse, before anything is allocated, a batch that cannot fit in the device's memory: a
    training step keeps what autograd saves, the weights and their gradients at once; an
    evaluation at least the input and the largest layer output."""
    if train:
        need = report.total.training_bytes - report.total.optimizer_bytes
        what = "what a training step keeps (the saved activations, weights and gradients)"
    else:
        size = report.batch_size * math.prod(report.input_size) * dtype.itemsize
        need = size + max((r.act_bytes for r in report.layers), default=0)
        what = "the input and the largest layer output together"
    have = device_memory(device)
    if have is not None and need > have:
        raise CnnzooError(
            f"{report.model} on a batch of {report.batch_size:,} needs at least {_bytes(need)} "
            f"for {what}, more than the {_bytes(have)} of {device.type} memory; use a smaller "
            f"batch"
        )


def _whole_step(model: nn.Module, x: torch.Tensor, train: bool, sync) -> float:
    for p in model.parameters():
        p.grad = None
    sync()
    start = time.perf_counter()
    out = model(x)
    if train:
        _backward(out)
    sync()
    return time.perf_counter() - start


def _instrumented_step(model: nn.Module, x: torch.Tensor, train: bool, sync):
    """One step under the recorder: the recorded rows' names with their forward and backward
    seconds."""
    for p in model.parameters():
        p.grad = None
    rec = _TimedRecorder(model, x, sync)
    with module_tracking(rec), rec:
        out = model(x)
    backward: dict[int, float] = {}
    if train:
        backward, handles = _time_nodes(rec.nodes, sync)
        try:
            _backward(out)
        finally:
            for h in handles:
                h.remove()
    return [(r.name, rec.seconds.get(id(r), 0.0), backward.get(id(r), 0.0)) for r in rec.rows]


STATISTICS = ("median", "mean")


def _centre_iqr(values: list[float], statistic: str) -> tuple[float, float]:
    """The median or the mean of ``values``, and their interquartile range."""
    centre = statistics.median(values) if statistic == "median" else statistics.fmean(values)
    if len(values) < 2:
        return centre, 0.0
    q1, _, q3 = statistics.quantiles(values, n=4)
    return centre, q3 - q1


def _summarise(
    report: Report,
    plain,
    timed,
    train: bool,
    device: torch.device,
    sizes: dict[str, int],
    statistic: str = "median",
) -> Profile:
    index = {r.name: i for i, r in enumerate(report.layers)}
    fwd: list[list[float]] = [[] for _ in report.layers]
    bwd: list[list[float]] = [[] for _ in report.layers]
    extra: set[str] = set()
    for step in timed:
        for name, f, b in step:
            if name in index:
                fwd[index[name]].append(f)
                bwd[index[name]].append(b)
            else:  # a training-only branch (an auxiliary head): its time stays outside
                extra.add(name)
    total, total_spread = _centre_iqr(plain, statistic)
    rows = []
    for i, r in enumerate(report.layers):
        f, fs = _centre_iqr([1e3 * s for s in fwd[i]] or [0.0], statistic)
        b, bs = (None, None)
        if train:
            b, bs = _centre_iqr([1e3 * s for s in bwd[i]] or [0.0], statistic)
        traffic = row_bytes(report, r, sizes)
        flops = 2 * (r.macs + (r.backward_macs if train else 0))
        rows.append(
            ProfileRow(
                row=i,
                module=r.name,
                type=r.type,
                forward_ms=f,
                forward_spread_ms=fs,
                backward_ms=b,
                backward_spread_ms=bs,
                flops=flops,
                bytes=traffic,
                intensity=2 * r.macs / traffic if traffic else 0.0,
            )
        )
    total_ms = 1e3 * total
    for r in rows:
        r.share = r.ms / total_ms if total_ms else 0.0
    notes = []
    if extra:
        notes.append(
            f"Rows that run only in training, not in the table (their time is outside "
            f"layers): {', '.join(sorted(extra))}"
        )
    outside_ms = total_ms - sum(r.ms for r in rows)
    notes += _gap_note(outside_ms, total_ms, 1e3 * total_spread, statistic)
    return Profile(
        model=report.model,
        input_size=report.input_size,
        batch=report.batch_size,
        train=train,
        machine=machine(device),
        rows=rows,
        outside_layers_ms=outside_ms,
        total_ms=total_ms,
        total_spread_ms=1e3 * total_spread,
        notes=notes,
        statistic=statistic,
    )


# Rows that miss the whole step by more than this are said to (the tolerance).
ADD_UP_TOLERANCE = 0.10


def _gap_note(outside_ms: float, total_ms: float, spread_ms: float, statistic: str) -> list[str]:
    """A line saying why the rows miss the step, when they miss it by more than the tolerance."""
    if not total_ms or abs(outside_ms) <= ADD_UP_TOLERANCE * total_ms:
        return []
    line = (
        f"The rows add up to {100 * (total_ms - outside_ms) / total_ms:.0f}% of the measured "
        f"step, not within {ADD_UP_TOLERANCE:.0%}."
    )
    if outside_ms > 0:
        line += " The rest is outside the rows' ops: Python between them, the autograd engine."
    else:
        line += " Timed alone, the ops took longer than in the plain step (the timer's own cost)."
    if spread_ms > ADD_UP_TOLERANCE * total_ms:
        line += (
            f" The step's repeats spread by {100 * spread_ms / total_ms:.0f}% of it (interquartile"
            f" range): on a busy machine, stalls fall unevenly on the plain step and the timed ops"
        )
        if statistic == "median":
            line += "; medians of the parts need not add up to the whole's, means do (--stat mean)"
        line += "."
    return [line]


def row_bytes(report: Report, r: LayerStats, sizes: dict[str, int]) -> int:
    """Bytes a row moves in the forward pass, as the analyzer knows them: every input it reads,
    the output it writes, and its weights (``sizes``: parameter name -> elements, for the shared
    ones counted on another row), at the report's element size."""
    esize = report.total.forward_bytes // max(report.total.activations, 1) or 4
    inputs = sum(math.prod(s) for s in r.input_shapes) * report.batch_size
    weights = r.params + sum(sizes.get(n, 0) for n in r.shared)
    return (inputs + r.activations + weights) * esize
