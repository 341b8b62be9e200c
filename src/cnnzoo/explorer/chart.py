"""The notes' complexity chart as SVG: published top-1 against operations, bubble area = parameters.

Built here, in Python, from the numbers of the comparison rows; each bubble links to its model's
page and names its figures in a tooltip. Labels go right of their bubble, or to the nearest free
place above or below, so that no label covers another label or a bubble.
"""

from __future__ import annotations

import math
from html import escape

from ..notation import format_short

WIDTH, HEIGHT = 960, 560
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 30, 20, 60
_R100 = 34.0  # radius in pixels of a 100M-parameter bubble (area proportional to parameters)
_CHAR, _LINE = 7.6, 16  # label metrics at the chart's 13 px font


def radius(params: int) -> float:
    return _R100 * math.sqrt(params / 100e6)


def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + k * step for k in range(int((hi - start) / step) + 1)]


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def complexity_svg(rows: list[dict], href: dict[str, str]) -> tuple[str, list[str]]:
    """The chart of the rows that have a published top-1, and the names left out for want of one.

    ``rows`` are :func:`cnnzoo.explore.data.comparison_row` dictionaries; ``href`` maps a name to
    its page.
    """
    shown = [r for r in rows if (r["reference"] or {}).get("top1") is not None]
    left_out = [r["name"] for r in rows if r not in shown]
    if not shown:
        return "", left_out
    gmacs = [r["macs"] / 1e9 for r in shown]
    top1 = [r["reference"]["top1"] for r in shown]
    x_hi = max(gmacs) * 1.15 + 0.5
    y_lo, y_hi = math.floor(min(top1) - 4), math.ceil(max(top1) + 4)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + plot_w * x / x_hi

    def py(y: float) -> float:
        return _TOP + plot_h * (y_hi - y) / (y_hi - y_lo)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        'role="img" aria-label="accuracy against operations, bubble area is parameters">'
    ]
    for t in _ticks(0, x_hi):
        parts.append(f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{_TOP}" '
                     f'y2="{_TOP + plot_h}"/><text class="tick" x="{px(t):.1f}" '
                     f'y="{_TOP + plot_h + 18}" text-anchor="middle">{t:g}</text>')  # fmt: skip
    for t in _ticks(y_lo, y_hi):
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{py(t):.1f}" '
                     f'y2="{py(t):.1f}"/><text class="tick" x="{_LEFT - 8}" y="{py(t) + 4:.1f}" '
                     f'text-anchor="end">{t:g}</text>')  # fmt: skip
    parts.append(
        f'<text class="axis" x="{_LEFT + plot_w / 2}" y="{HEIGHT - 14}" text-anchor="middle">'
        "operations per image, GMACs (FLOPs = 2 x MACs)</text>"
        f'<text class="axis" transform="translate(18 {_TOP + plot_h / 2}) rotate(-90)" '
        'text-anchor="middle">published ImageNet top-1 (%)</text>'
    )
    centres = [
        (px(x), py(y), radius(r["params"])) for x, y, r in zip(gmacs, top1, shown, strict=True)
    ]
    boxes = [(cx - rad, cy - rad, 2 * rad, 2 * rad) for cx, cy, rad in centres]
    for k, (r, (cx, cy, rad)) in enumerate(zip(shown, centres, strict=True)):
        tip = (f"{r['name']}: top-1 {r['reference']['top1']:g}% [{r['reference']['source']}], "
               f"{format_short(r['macs'])} MACs, {r['params']:,} parameters")  # fmt: skip
        w, h = _CHAR * len(r["name"]), _LINE
        others = boxes[:k] + boxes[k + 1 :]
        offsets = [0.0] + [s * j * h for j in range(1, 10) for s in (-1, 1)]
        lx = cx + rad + 4
        if lx + w > WIDTH:  # no room on the right: label on the left
            lx = cx - rad - 4 - w
        dy = next((d for d in offsets if not any(_overlap((lx, cy + d - h / 2, w, h), b)
                                                 for b in others)), 0.0)  # fmt: skip
        boxes.append((lx, cy + dy - h / 2, w, h))
        lead = (f'<line class="lead" x1="{cx:.1f}" y1="{cy:.1f}" x2="{lx:.1f}" '
                f'y2="{cy + dy:.1f}"/>') if dy else ""  # fmt: skip
        parts.append(
            f'<a href="{escape(href[r["name"]])}" class="bubble" data-model="{escape(r["name"])}">'
            f"<title>{escape(tip)}</title>{lead}"
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{rad:.1f}" class="c{k % 10}"/>'
            f'<text x="{lx:.1f}" y="{cy + dy + 4.5:.1f}">{escape(r["name"])}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts), left_out
