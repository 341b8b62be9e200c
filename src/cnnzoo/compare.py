"""Several models side by side: what ``cnnzoo.analyze`` measures, beside published ImageNet figures.

``compare(["alexnet", "vgg16", "resnet50"])`` analyses each model at its registry input size (on
the meta device: no weights are allocated) and joins the published top-1 accuracy and, for the
ILSVRC winners of the notes' chart, the year and top-5 error, from ``resources/reference.json``.
``plot_complexity`` draws the notes' complexity chart: top-1 against operations, bubble area
proportional to parameters.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import CnnzooError
from .notation import format_megabytes, format_short

__all__ = [
    "Comparison",
    "ComparisonRow",
    "compare",
    "complexity_figure",
    "distinct_colours",
    "load_reference",
    "plot_complexity",
]


@cache
def load_reference() -> dict:
    """The published figures shipped with cnnzoo (``cnnzoo/resources/reference.json``)."""
    text = resources.files("cnnzoo").joinpath("resources/reference.json").read_text("utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class ComparisonRow:
    name: str  # registered model name
    input_size: tuple[int, int, int]  # (C, H, W) it was analysed at: the registry's input size
    params: int  # every parameter, a shared tensor counted once
    unused_params: int  # of which the evaluation-mode forward never uses (auxiliary heads)
    macs: int  # multiply-accumulates for one image (FLOPs = 2 x MACs)
    activations: int  # values the forward pass makes for one image
    forward_bytes: int  # their bytes in float32
    rf: int  # receptive field of the final feature map, in input pixels
    rf_global: bool  # the final units see the whole input (global pooling)
    top1: float | None  # published ImageNet top-1 accuracy, percent; None if there is none
    top5: float | None  # published ImageNet top-5 accuracy, percent
    source: str | None  # key of the reference's "sources" the accuracy comes from
    no_imagenet: str | None  # why there is no ImageNet figure (a CIFAR model, say)
    ilsvrc_year: int | None  # year of the notes' winners chart
    ilsvrc_top5_error: float | None  # that entry's top-5 error, percent (an ensemble)
    ilsvrc_place: str | None  # "1st", "2nd"
    ilsvrc_exact: bool  # the entry is this model; False: only its family (resnet50 -> ResNet-152)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def inference_params(self) -> int:
        """Parameters the evaluation-mode forward uses: the figure papers quote for GoogLeNet."""
        return self.params - self.unused_params

    @property
    def rf_text(self) -> str:
        return f"{self.rf} (global)" if self.rf_global else str(self.rf)

    @property
    def ilsvrc_text(self) -> str:
        if self.ilsvrc_year is None:
            return ""
        mark = "" if self.ilsvrc_exact else "*"
        return f"{self.ilsvrc_year} {self.ilsvrc_place}, {self.ilsvrc_top5_error:g}%{mark}"


_COLUMNS = [
    ("model", "name"),
    ("input", "input"),
    ("params", "params"),
    ("MACs", "macs"),
    ("fwd memory", "memory"),
    ("RF", "rf"),
    ("top-1 %", "top1"),
    ("ILSVRC top-5 err", "ilsvrc"),
]


@dataclass(frozen=True)
class Comparison:
    rows: list[ComparisonRow]

    def _cells(self, r: ComparisonRow) -> dict[str, str]:
        c, h, w = r.input_size
        top1 = "n/a" if r.no_imagenet else "?"
        if r.top1 is not None:
            top1 = f"{r.top1:.1f}" + (f" [{r.source}]" if r.source else "")
        return {
            "name": r.name,
            "input": f"{h}x{w}x{c}",
            "params": format_short(r.inference_params) + ("+" if r.unused_params else ""),
            "macs": format_short(r.macs),
            "memory": format_megabytes(r.forward_bytes),
            "rf": r.rf_text,
            "top1": top1,
            "ilsvrc": r.ilsvrc_text,
        }

    def footnotes(self) -> list[str]:
        """What the marks in the table mean, and where each figure comes from."""
        ref = load_reference()
        notes = [
            "MACs: multiply-accumulates per image (FLOPs = 2 x MACs); fwd memory: the values "
            "one float32 image makes in the forward pass; RF: receptive field of the final "
            "feature map in input pixels.",
        ]
        if any(not r.ilsvrc_exact and r.ilsvrc_year for r in self.rows):
            notes.append(
                "*: the figure of the family's ILSVRC entry (an ensemble), not of this model."
            )
        for r in self.rows:
            if r.unused_params:
                notes.append(
                    f"{r.name} +: {r.inference_params:,} parameters at inference; "
                    f"{r.unused_params:,} more in layers only training uses (auxiliary heads)."
                )
        missing = [r for r in self.rows if r.top1 is None]
        for r in missing:
            why = r.no_imagenet or "no published figure in cnnzoo's reference data"
            notes.append(f"{r.name}: no ImageNet top-1 ({why}).")
        for key in dict.fromkeys(r.source for r in self.rows if r.source):
            notes.append(f"[{key}] {ref['sources'][key]['cite']}.")
        return notes

    def to_table(self) -> str:
        """A plain-text table for the terminal, with footnotes."""
        cells = [self._cells(r) for r in self.rows]
        widths = {key: max(len(title), *(len(c[key]) for c in cells)) for title, key in _COLUMNS}
        left = {"name", "input", "ilsvrc"}

        def line(values: dict[str, str]) -> str:
            parts = [
                values[k].ljust(widths[k]) if k in left else values[k].rjust(widths[k])
                for _, k in _COLUMNS
            ]
            return "  ".join(parts).rstrip()

        out = [line({k: t for t, k in _COLUMNS})]
        out.append("  ".join("-" * widths[k] for _, k in _COLUMNS))
        out += [line(c) for c in cells]
        return "\n".join(out + [""] + self.footnotes())

    def to_markdown(self) -> str:
        """A Markdown table, with footnotes as a list."""
        cells = [self._cells(r) for r in self.rows]
        out = ["| " + " | ".join(t for t, _ in _COLUMNS) + " |"]
        align = {"name": ":--", "input": ":--", "ilsvrc": ":--"}
        out.append("|" + "|".join(align.get(k, "--:") for _, k in _COLUMNS) + "|")
        out += ["| " + " | ".join(c[k] for _, k in _COLUMNS) + " |" for c in cells]
        out += [""] + [f"- {n}" for n in self.footnotes()]
        return "\n".join(out).replace("*", "\\*")  # a literal star, not emphasis

    def to_dicts(self) -> list[dict]:
        """One dictionary per model, every number exact (counts, bytes, percent)."""
        out = []
        for r in self.rows:
            d = asdict(r)
            d["input_size"] = list(r.input_size)
            d["flops"] = r.flops
            d["inference_params"] = r.inference_params
            out.append(d)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps({"models": self.to_dicts(), "notes": self.footnotes()}, indent=indent)

    def to_csv(self) -> str:
        rows = self.to_dicts()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for d in rows:
            writer.writerow({**d, "input_size": "x".join(map(str, d["input_size"]))})
        return buf.getvalue()


def _ilsvrc(name: str) -> tuple[dict | None, bool]:
    for entry in load_reference()["ilsvrc"]:
        if name in entry["models"]:
            return entry, True
    for entry in load_reference()["ilsvrc"]:
        if name in entry.get("related", []):
            return entry, False
    return None, False


def compare_row(
    name: str, batch_size: int = 1, input_size: tuple[int, int, int] | None = None
) -> ComparisonRow:
    """Analyse one registered model at ``input_size`` (C, H, W; default its own) and join the
    published figures."""
    from .analysis import analyze
    from .registry import create_model, get_model_info

    info = get_model_info(name)  # an unknown name raises here, with the closest names
    size = tuple(input_size or info.input_size)
    in_chans = size[0] if size[0] != info.input_size[0] else None
    model = create_model(name, in_chans=in_chans, device="meta")
    report = analyze(model, input_size=size, batch_size=batch_size, name=name)
    total = report.total
    named = dict(model.named_parameters(remove_duplicate=False))
    unused = {id(named[n]): named[n].numel() for n in total.unused_params if n in named}
    ref = load_reference()
    pub = ref["models"].get(name, {})
    entry, exact = _ilsvrc(name)
    return ComparisonRow(
        name=name,
        input_size=size,
        params=total.params,
        unused_params=sum(unused.values()),
        # the analyzer counts the whole batch; the table is per image, as the notes are
        macs=total.macs // batch_size,
        activations=total.activations // batch_size,
        forward_bytes=total.forward_bytes // batch_size,
        rf=total.rf,
        rf_global=bool(total.rf_global),
        top1=pub.get("top1"),
        top5=pub.get("top5"),
        source=pub.get("source"),
        no_imagenet=ref["no_imagenet"].get(name),
        ilsvrc_year=entry["year"] if entry else None,
        ilsvrc_top5_error=entry["top5_error"] if entry else None,
        ilsvrc_place=entry["place"] if entry else None,
        ilsvrc_exact=exact,
    )


def compare(names: Sequence[str], input_size: tuple[int, int, int] | None = None) -> Comparison:
    """Compare registered models: parameters, MACs, forward memory, receptive field, published
    ImageNet top-1 and ILSVRC placing. Names may be shell wildcards (``"vgg1?"``). Each model is
    analysed at its own input size, or at ``input_size`` (C, H, W) for all."""
    from .paths import as_list
    from .registry import get_model_info, list_models

    names = as_list(names)
    if not names:
        raise CnnzooError("name at least one model to compare, e.g. alexnet vgg16 resnet50")
    expanded: list[str] = []
    for pattern in names:
        matches = list_models(pattern) if any(ch in pattern for ch in "*?[") else [pattern]
        if not matches:
            raise CnnzooError(f"no model matches {pattern!r}; see `cnnzoo list`")
        for m in matches:
            get_model_info(m)  # fail on an unknown name before analysing anything
            if m not in expanded:
                expanded.append(m)
    return Comparison([compare_row(n, input_size=input_size) for n in expanded])


def _overlaps(box: tuple[float, ...], boxes: list[tuple[float, ...]]) -> bool:
    """Whether the rectangle (x, y, width, height) overlaps any of ``boxes``."""
    x, y, w, h = box
    return any(
        x < bx + bw and bx < x + w and y < by + bh and by < y + h for bx, by, bw, bh in boxes
    )


COMPLEXITY_TITLE = "Comparing complexity: accuracy against operations, bubble area = parameters"


def distinct_colours(n: int) -> list[tuple[float, float, float]]:
    """``n`` colours no two alike: matplotlib's tab10, then tab20's lighter tints of them (beyond
    10), then evenly spaced hues of three brightnesses (beyond 20), so that no two bubbles of a
    chart share a colour."""
    from matplotlib import colormaps, colors

    if n <= 10:
        return list(colormaps["tab10"].colors[:n])
    if n <= 20:
        tab20 = colormaps["tab20"].colors  # dark, light, dark, light ...: the darks first
        return list(tab20[0::2] + tab20[1::2])[:n]
    hues = math.ceil(n / 3)
    return [
        tuple(colors.hsv_to_rgb((i % hues / hues, 0.75, (1.0, 0.75, 0.5)[i // hues])))
        for i in range(n)
    ]


def complexity_figure(
    comparison: Comparison | Sequence[ComparisonRow],
    size: tuple[int, int] = (1000, 650),
    dpi: int = 100,
    title: str = COMPLEXITY_TITLE,
):
    """The notes' complexity chart as a matplotlib Figure: published top-1 accuracy against
    operations (GMACs), bubble area proportional to parameters, each bubble labelled and of its
    own colour. Returns ``(figure, names left out for want of an ImageNet figure)``."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot's import
    import matplotlib.pyplot as plt

    rows = comparison.rows if isinstance(comparison, Comparison) else list(comparison)
    shown = [r for r in rows if r.top1 is not None]
    skipped = [r.name for r in rows if r.top1 is None]
    if not shown:
        raise CnnzooError(
            f"nothing to plot: none of {', '.join(skipped)} has a published ImageNet top-1"
        )
    if size[0] < 200 or size[1] < 150:
        raise CnnzooError(f"the chart needs at least 200x150 pixels, got {size[0]}x{size[1]}")

    # Area in points^2 proportional to parameters; 100M parameters -> a 1,500 pt^2 bubble.
    def area(params: float) -> float:
        return 1500 * params / 100e6

    fig, ax = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    fig.subplots_adjust(left=0.08, right=0.97, top=0.93, bottom=0.1)
    xs = [r.macs / 1e9 for r in shown]
    ys = [r.top1 for r in shown]
    ax.set_xlim(left=0, right=max(xs) * 1.2 + 0.5)
    ax.set_ylim(min(ys) - 4, max(ys) + 4)
    colors = distinct_colours(len(shown))
    pt = dpi / 72  # pixels per point
    # Bubbles first, then labels: each label goes right of its bubble, or the nearest free
    # place above or below (with a leader line) so that it covers no other label or bubble.
    radii = [(area(r.inference_params) / 3.1416) ** 0.5 * pt for r in shown]  # pixels
    centres = [ax.transData.transform((x, y)) for x, y in zip(xs, ys, strict=True)]
    for i, r in enumerate(shown):
        ax.scatter(
            xs[i], ys[i], s=area(r.inference_params), color=colors[i], alpha=0.55,
            lw=0.8, edgecolors="black", zorder=3,
        )  # fmt: skip
    boxes = [(cx - r, cy - r, 2 * r, 2 * r) for (cx, cy), r in zip(centres, radii, strict=True)]
    for i, r in enumerate(shown):
        (px, py), dx = centres[i], radii[i] + 3 * pt
        w, h = 6.0 * pt * len(r.name), 11 * pt
        others = boxes[:i] + boxes[i + 1 :]
        steps = [0.0] + [sign * k * h for k in range(1, 8) for sign in (-1, 1)]
        dy = next((d for d in steps if not _overlaps((px + dx, py + d - h / 2, w, h), others)), 0.0)
        boxes.append((px + dx, py + dy - h / 2, w, h))
        ax.annotate(
            r.name, (xs[i], ys[i]), xytext=(dx / pt, dy / pt), textcoords="offset points",
            va="center", fontsize=9, zorder=4,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if dy else None,
        )  # fmt: skip
    ax.set_xlabel("operations per image, GMACs (multiply-accumulates; FLOPs = 2 x MACs)")
    ax.set_ylabel("published ImageNet top-1 accuracy (%)")
    # Bubbles are the parameters used at inference (GoogLeNet's auxiliary heads left out).
    ax.set_title(title)
    ax.grid(True, alpha=0.3, zorder=0)
    for p in (10e6, 50e6, 100e6):  # a legend of bubble sizes
        ax.scatter(
            [],
            [],
            s=area(p),
            color="grey",
            alpha=0.4,
            edgecolors="black",
            label=f"{p / 1e6:g}M params",
        )
    ax.legend(loc="best", labelspacing=2.2, borderpad=1.4, handletextpad=1.5, fontsize=8)
    if skipped:
        fig.text(0.01, 0.01, "not shown (no ImageNet figure): " + ", ".join(skipped), fontsize=7)
    return fig, skipped


def plot_complexity(
    comparison: Comparison | Sequence[ComparisonRow],
    path: str | os.PathLike,
    size: tuple[int, int] = (1000, 650),
    dpi: int = 100,
    title: str = COMPLEXITY_TITLE,
) -> list[str]:
    """Draw ``complexity_figure`` to a PNG of ``size`` pixels. Returns the names left out for
    want of an ImageNet figure. The file is written beside ``path`` and renamed over it, so a
    failure leaves no torn file."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if not path.parent.is_dir():
        raise CnnzooError(f"cannot write {path}: the folder {path.parent} does not exist")
    fig, skipped = complexity_figure(comparison, size, dpi, title)
    # savefig creates the file, so it gets the mode of any new file (mkstemp's would be 0600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, format="png", dpi=dpi)  # no bbox_inches="tight": keep the pixel size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return skipped
