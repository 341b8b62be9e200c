"""The report of an analysis: rows, totals, and their formats (table, Markdown, CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field


@dataclass
class LayerStats:
    """One row: a leaf module's call, or a functional op run by a container (``layer1.0.add``)."""

    name: str  # module path; "#2" marks a second call of the same module
    type: str  # module class (``Conv2d``) or op name (``add``, ``cat``, ``matmul``)
    output: tuple[int, ...]  # per sample: (C, H, W) or (N,)
    params: int  # parameters first counted on this row (a shared tensor is counted once)
    param_formula: str  # e.g. "(11*11*3+1)*96"
    macs: int  # multiply-accumulates for the whole batch
    activations: int  # elements of the output, whole batch
    act_bytes: int  # bytes of the output, whole batch
    rf: int  # receptive field of one output unit, in input pixels
    stride: int  # effective stride (jump) of the output, in input pixels
    rf_global: bool = False  # the unit sees the whole input (global pooling on its path)
    depth: int = 0  # components of the module path (``features.0`` is 2)
    uncounted: dict[str, int] = field(default_factory=dict)  # ops here not counted in MACs
    shared: list[str] = field(default_factory=list)  # parameters used here, counted elsewhere
    inplace: bool = False  # the op wrote into its input (no new activation storage)
    inputs: list[int] = field(default_factory=list)  # rows whose outputs this one reads; -1: input
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)  # each as read, per sample
    backward_macs: int = 0  # the training step's input and weight gradients, whole batch

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass
class Totals:
    params: int  # every parameter of the model, a shared tensor counted once
    trainable: int  # of which requires_grad
    frozen: int  # of which not
    macs: int  # whole batch
    flops: int  # = 2 * macs
    activations: int  # elements of the distinct tensors the forward makes (input included), batch
    forward_bytes: int  # their bytes
    training_bytes: int  # saved_bytes + weights + gradients + momentum, for the batch
    rf: int  # receptive field of one unit of the final feature map
    rf_global: bool  # that unit sees the whole input
    uncounted: dict[str, int]  # op -> calls whose arithmetic is not in ``macs``
    saved_bytes: int = 0  # what autograd keeps for backward (the activation part of training)
    weight_bytes: int = 0  # parameters and buffers
    grad_bytes: int = 0  # gradients of the trainable parameters
    optimizer_bytes: int = 0  # one momentum buffer per trainable parameter
    unused_params: list[str] = field(default_factory=list)  # parameters the forward never used
    notes: list[str] = field(default_factory=list)  # caveats, printed under the totals
    backward_macs: int = 0  # whole batch: gradients of inputs and trainable weights
    train_step_macs: int = 0  # forward + backward, whole batch


@dataclass
class Report:
    model: str
    input_size: tuple[int, ...]
    batch_size: int
    layers: list[LayerStats]
    total: Totals
    dtype: str = "float32"

    # --- machine-readable ---
    def to_dict(self) -> dict:
        """The issue's JSON shape (plus a few extra keys)."""
        layers = []
        for r in self.layers:
            d = asdict(r)
            d["output"] = list(r.output)
            d["flops"] = r.flops
            layers.append(d)
        return {
            "model": self.model,
            "input": list(self.input_size),
            "batch": self.batch_size,
            "dtype": self.dtype,
            "layers": layers,
            "total": asdict(self.total),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        buf = io.StringIO()
        cols = [
            "name", "type", "output", "params", "param_formula", "macs", "flops",
            "activations", "act_bytes", "rf", "stride", "rf_global", "uncounted",
        ]  # fmt: skip
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in self.layers:
            unc = ";".join(f"{k}:{v}" for k, v in r.uncounted.items())
            w.writerow(
                [
                    r.name,
                    r.type,
                    "x".join(map(str, r.output)),
                    r.params,
                    r.param_formula,
                    r.macs,
                    r.flops,
                    r.activations,
                    r.act_bytes,
                    r.rf,
                    r.stride,
                    r.rf_global,
                    unc,
                ]  # fmt: skip
            )
        return buf.getvalue()

    # --- for people ---
    def to_markdown(self) -> str:
        head = "| layer | type | output | params | formula | MACs | activations | RF | stride |"
        lines = [
            f"**{self.model}**, input {lecture_volume(self.input_size)}, batch {self.batch_size}",
            "",
            head,
            "|---|---|---|---:|---|---:|---:|---:|---:|",
        ]
        for r in self.layers:
            lines.append(
                f"| {r.name} | {r.type} | {lecture_volume(r.output)} | {r.params:,} | "
                f"{r.param_formula if r.params else ''} | {r.macs:,} | {r.activations:,} | "
                f"{_rf(r.rf, r.rf_global)} | {r.stride} |"
            )
        lines += ["", *(f"- {line}" for line in self.summary_lines())]
        return "\n".join(lines) + "\n"

    def to_table(self, depth: int | None = None) -> str:
        """The lecture's table: ``[55x55x96] CONV1 ... params (11*11*3+1)*96 = 34,944``.

        ``depth`` groups the rows by the first ``depth`` components of their module path.
        """
        rows = self.layers if depth is None else group_rows(self.layers, depth)
        cells = [("output", "layer", "module", "type", "params", "MACs", "memory", "RF/stride")]
        cells.append((f"[{lecture_volume(self.input_size)}]", "INPUT", "", "", "0", "",
                      _count(_prod(self.input_size)), "1/1"))  # fmt: skip
        for r, label in zip(rows, lecture_labels(rows), strict=True):
            params = ""
            if r.params:
                params = f"{r.param_formula} = {r.params:,}" if r.param_formula else f"{r.params:,}"
            elif r.shared:
                params = "shared"
            cells.append(
                (
                    f"[{lecture_volume(r.output)}]",
                    label,
                    r.name,
                    r.type,
                    params,
                    _count(r.macs // max(self.batch_size, 1)) if r.macs else "",
                    _count(r.activations // max(self.batch_size, 1)),
                    f"{_rf(r.rf, r.rf_global)}/{r.stride}",
                )
            )
        widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        right = {4, 5, 6}
        out = []
        for k, c in enumerate(cells):
            parts = [c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i])
                     for i in range(len(c))]  # fmt: skip
            out.append("  ".join(parts).rstrip())
            if k == 0:
                out.append("  ".join("-" * w for w in widths))
        per = "per image" if self.batch_size == 1 else f"per image (batch {self.batch_size})"
        out += ["", f"MACs and memory columns are {per}; memory is the output's element count."]
        out += self.summary_lines()
        return "\n".join(out) + "\n"

    def summary_lines(self) -> list[str]:
        """The totals in the notes' words."""
        t, b = self.total, max(self.batch_size, 1)
        esize = t.forward_bytes / max(t.activations, 1)
        lines = [
            f"TOTAL memory: {_count(t.activations // b)} * {esize:g} bytes ~= "
            f"{_bytes(t.forward_bytes // b)} / image (forward only; about x2 for backward)",
            f"TOTAL params: {t.params:,} ({_count(t.params)}; trainable {t.trainable:,}, "
            f"frozen {t.frozen:,})",
            f"TOTAL MACs: {t.macs // b:,} / image ({_count(t.macs // b)}); "
            f"FLOPs = 2 x MACs = {_count(t.flops // b)}",
            f"Training step MACs: {_count(t.train_step_macs // b)} / image = forward "
            f"{_count(t.macs // b)} + backward {_count(t.backward_macs // b)} (input and weight "
            f"gradients)",
            f"Training memory for a batch of {self.batch_size} (SGD with momentum): "
            f"{_bytes(t.training_bytes)} = autograd saves {_bytes(t.saved_bytes)} + weights "
            f"{_bytes(t.weight_bytes)} + gradients {_bytes(t.grad_bytes)} + momentum "
            f"{_bytes(t.optimizer_bytes)}",
            f"Receptive field of the final feature map: {_rf(t.rf, t.rf_global)}"
            + (" (global pooling inside: the whole input)" if t.rf_global else " pixels"),
        ]
        if t.uncounted:
            ops = ", ".join(f"{k} x{v}" for k, v in sorted(t.uncounted.items()))
            lines.append(f"Not counted in MACs (0 by convention): {ops}")
        lines += t.notes
        return lines


def lecture_labels(rows: list[LayerStats]) -> list[str]:
    """The notes' names: CONV1, MAX POOL1, NORM1, ..., FC6 (weighted layers numbered together,
    as AlexNet's FC6 follows CONV5); activations and other ops get none."""
    labels, layer, pool, norm = [], 0, 0, 0
    for r in rows:
        t = r.type.lower()
        if "conv" in t:
            layer += 1
            labels.append(f"CONV{layer}")
        elif t in ("linear", "matmul", "addmm", "mm") or "multi_head" in t:
            layer += 1
            labels.append(f"FC{layer}")
        elif "pool" in t:
            pool += 1
            labels.append(f"{'MAX' if 'max' in t else 'AVG'} POOL{pool}")
        elif "norm" in t:
            norm += 1
            labels.append(f"NORM{norm}")
        else:
            labels.append("")
    return labels


def group_rows(rows: list[LayerStats], depth: int) -> list[LayerStats]:
    """Rows merged by the first ``depth`` components of their name (``--depth``)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    out: list[LayerStats] = []
    for r in rows:
        base = r.name.split("#")[0]
        key = ".".join(base.split(".")[:depth])
        if out and out[-1].name == key and key != base:
            g = out[-1]
            g.params += r.params
            g.macs += r.macs
            g.activations += r.activations
            g.act_bytes += r.act_bytes
            g.output, g.rf, g.stride, g.rf_global = r.output, r.rf, r.stride, r.rf_global
            for k, v in r.uncounted.items():
                g.uncounted[k] = g.uncounted.get(k, 0) + v
            g.param_formula = ""
            g.type = "group"
        else:
            g = LayerStats(**{**asdict(r), "name": key if key != base else r.name})
            if key != base:
                g.type, g.param_formula = "group", ""
            out.append(g)
    return out


def lecture_volume(shape: tuple[int, ...]) -> str:
    """``(96, 55, 55)`` -> ``55x55x96`` (the notes write H x W x C); vectors stay as they are."""
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}x{w}x{c}"
    return "x".join(str(s) for s in shape) if shape else "1"


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _rf(rf: int, glob: bool) -> str:
    return "global" if glob else str(rf)


def _count(n: float) -> str:
    """``3211264`` -> ``3.2M``, as the notes round."""
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}" if n / div < 100 else f"{n / div:.0f}{unit}"
    return f"{int(n)}"


def _bytes(n: float) -> str:
    for div, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):  # decimal, as the notes
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"
