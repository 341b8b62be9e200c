"""Multi-view test-time augmentation: named views of a batch, and the average of their logits.

``--tta flip,translate`` gives airbench's six views: the image and its mirror, each as is and
translated by one pixel up-left and down-right (reflect padding). The un-translated pair weighs
1/2 and each translated pair 1/4, airbench's weights; the mirror and the original weigh alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CnnzooError

TTA_NAMES = ("flip", "translate")
TRANSLATE_SHIFTS = ((1, 1), (-1, -1))  # (down, right) pixels: down-right and up-left


def parse_tta(spec: str | None) -> tuple[str, ...]:
    """``"flip,translate"`` -> ``("flip", "translate")``; ``"none"``, "" or None -> ``()``."""
    if spec is None:
        return ()
    names = [t.strip() for t in spec.split(",") if t.strip() and t.strip() != "none"]
    for n in names:
        if n not in TTA_NAMES:
            raise CnnzooError(
                f"unknown test-time augmentation {n!r} in {spec!r}; use none or a comma-separated "
                f"list of {', '.join(TTA_NAMES)} (e.g. flip,translate)"
            )
    if len(set(names)) != len(names):
        raise CnnzooError(f"test-time augmentation {spec!r} names a view twice")
    return tuple(n for n in TTA_NAMES if n in names)  # a fixed order, whatever was typed


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved ``dy`` pixels down and ``dx`` right (negative: up, left), the uncovered border
    filled by reflection: ``out[..., i, j] = x[..., reflect(i - dy), reflect(j - dx)]``."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (p, p, p, p), mode="reflect")
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def tta_views(
    x: torch.Tensor, spec: str | tuple[str, ...]
) -> list[tuple[str, torch.Tensor, float]]:
    """``(name, view, weight)`` for every view of ``spec``; the weights sum to 1. Names:
    ``identity``, ``flip``, ``shift(1,1)``, ``flip+shift(1,1)``, ..."""
    names = parse_tta(spec) if isinstance(spec, str) else tuple(spec)
    views = [("identity", x, 1.0)]
    if "translate" in names:
        views = [("identity", x, 0.5)] + [
            (f"shift({dy},{dx})", shift(x, dy, dx), 0.5 / len(TRANSLATE_SHIFTS))
            for dy, dx in TRANSLATE_SHIFTS
        ]
    if "flip" in names:
        flipped = []
        for name, v, wt in views:
            mirror = "flip" if name == "identity" else f"flip+{name}"
            flipped += [(name, v, wt / 2), (mirror, v.flip(-1), wt / 2)]
        views = flipped
    return views


def tta_logits(model: nn.Module, x: torch.Tensor, spec: str | tuple[str, ...]) -> torch.Tensor:
    """The weighted mean of ``model``'s logits over the views of ``spec`` (float32). A model that
    returns a tuple (auxiliary heads) is read by its first element. The caller sets eval mode
    and ``no_grad``."""
    total = None
    for _, view, weight in tta_views(x, spec):
        out = model(view)
        out = out[0] if isinstance(out, (tuple, list)) else out
        total = weight * out.float() if total is None else total + weight * out.float()
    return total
