"""The roofline picture: each profiled row at its arithmetic intensity and achieved rate.

Drawn with matplotlib's Agg canvas on a ``Figure`` of its own (pyplot and the global backend are
never touched, so a notebook's or a GUI's plotting is left as it was).
"""

from __future__ import annotations

from pathlib import Path

from .ceilings import Ceilings
from .profile import Profile

# Layer kinds, by what their type name contains, and their colours (first match wins).
KINDS = (
    ("convolution", ("conv",), "#1f77b4"),
    ("linear / matmul", ("linear", "matmul", "mm", "einsum", "attention"), "#d62728"),
    ("normalisation", ("norm",), "#2ca02c"),
    ("pooling", ("pool",), "#9467bd"),
    ("activation", ("relu", "sigmoid", "tanh", "gelu", "silu", "swish", "softmax"), "#ff7f0e"),
)
OTHER = ("other", "#7f7f7f")


def kind(layer_type: str) -> tuple[str, str]:
    """``(kind, colour)`` of a row's type (``Conv2d``, ``add``, ...)."""
    t = layer_type.lower()
    for label, keys, colour in KINDS:
        if any(k in t for k in keys):
            return label, colour
    return OTHER


def plot_roofline(
    profile: Profile,
    ceilings: Ceilings,
    path: str | Path,
    title: str | None = None,
    size: tuple[float, float] = (8.0, 5.0),
    dpi: int = 100,
) -> Path:
    """Write the roofline PNG of ``profile`` against the measured ``ceilings`` to ``path``.

    Rows with no counted arithmetic (0 MACs by the analyzer's convention) have no intensity and are
    left out; the legend says how many.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown = [r for r in profile.rows if r.flops and r.intensity > 0 and r.ms > 0]
    xs = [r.intensity for r in shown] + [ceilings.ridge]
    lo, hi = min(xs) / 4, max(xs) * 4
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(
        grid,
        [min(ceilings.gflops, ceilings.gbps * x) for x in grid],
        color="black",
        lw=1.5,
        label=f"roof: {ceilings.gflops:.0f} GFLOP/s, {ceilings.gbps:.1f} GB/s",
    )
    seen = set()
    for r in shown:
        label, colour = kind(r.type)
        ax.scatter(
            r.intensity,
            max(r.gflops, 1e-3),
            s=20 + 400 * r.share,
            color=colour,
            edgecolors="white",
            linewidths=0.5,
            label=None if label in seen else label,
        )
        seen.add(label)
    hidden = len(profile.rows) - len(shown)
    if hidden:
        ax.plot([], [], " ", label=f"{hidden} rows with 0 MACs not shown")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (forward FLOPs per byte moved)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8, loc="lower right")
    mode = "training step" if profile.train else "forward"
    ax.set_title(
        title or f"{profile.model} ({mode}, batch {profile.batch}) on {ceilings.machine}",
        fontsize=9,
    )
    path = Path(path)
    fig.savefig(path)
    return path
