"""The lecture's notation, written and read in one place: sizes ``227x227x3`` and numbers.

Pure Python, no torch, so the calculators and ``--help`` stay instant.

Sizes are written as the notes write them, height x width x depth (``55x55x96``). PyTorch orders
a tensor's dimensions C, H, W, so the parser returns ``(C, H, W)``. A size recognisably written
the other way round (``3x227x227``) is read as C x H x W, and ``Size.note`` says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import CnnzooError

__all__ = [
    "Size",
    "format_count",
    "format_megabytes",
    "format_short",
    "format_size",
    "image_hw",
    "parse_size",
]

_SPLIT = re.compile(r"\s*[x×*,]\s*")


@dataclass(frozen=True)
class Size:
    """An input size read from text: channels, height, width, and a note when it was reordered."""

    chans: int
    height: int
    width: int
    note: str | None = None  # set when the text was read as C x H x W

    @property
    def chw(self) -> tuple[int, int, int]:
        return (self.chans, self.height, self.width)

    @property
    def hw(self) -> tuple[int, int]:
        return (self.height, self.width)

    def __str__(self) -> str:
        return format_size(self.chw)


def _channels_first(a: int, b: int, c: int) -> bool:
    """Whether ``a x b x c`` is recognisably C x H x W rather than the notes' H x W x C.

    It is when the last two sides form a square the first does not (``3x227x227``, ``48x19x19``),
    or when a colour-like first side (at most 4) stands before a larger last one (``3x224x320``).
    """
    if a == b:
        return False  # 227x227x3, 19x19x48: a square first, depth last
    return b == c or (a <= 4 < c)


def parse_size(
    text: str, *, chans: int | None = None, option: str = "--input", max_side: int = 16384
) -> Size:
    """Read ``HxWxC`` (``227x227x3``), ``HxW`` or ``S`` (a square) into a :class:`Size`.

    ``chans`` fills in the depth where the text leaves it out (a model's own channel count); with
    no ``chans`` the depth is 3. ``option`` names the flag in error messages. Sides above
    ``max_side`` are refused: they are typos, and would allocate gigabytes.
    """
    parts = _SPLIT.split(str(text).strip().lower())  # "32x" leaves an empty part: refused
    example = f"{option} takes HxWxC as the lecture writes it (e.g. 227x227x3), HxW or a side"
    if len(parts) > 3 or not all(p.isdigit() for p in parts):
        raise CnnzooError(f"{example}; got {text!r}")
    nums = [int(p) for p in parts]
    if min(nums) <= 0:
        raise CnnzooError(f"{option}: sizes must be positive, got {text!r}")
    note = None
    if len(nums) == 1:
        h = w = nums[0]
        c = chans or 3
    elif len(nums) == 2:
        (h, w), c = nums, chans or 3
    elif _channels_first(*nums):
        c, h, w = nums
        note = (
            f"{option} {text}: read as C x H x W = {c} channel{'' if c == 1 else 's'} of {h}x{w}; "
            f"the lecture's notation is {h}x{w}x{c}"
        )
    else:
        h, w, c = nums
    if max(h, w) > max_side:
        raise CnnzooError(
            f"{option}: a side of {max(h, w):,} pixels is too large (at most {max_side:,})"
        )
    return Size(c, h, w, note)


def image_hw(value: object, option: str = "img_size") -> tuple[int, int]:
    """An image size given in Python as timm takes it: ``224`` (a square), ``(224, 320)`` (H, W)
    or the text ``--img-size`` takes (``"224x320"``)."""
    if isinstance(value, str):
        return parse_size(value, option=option).hw
    pair = (value, value) if isinstance(value, int) else value
    try:
        h, w = pair  # type: ignore[misc]
    except (TypeError, ValueError):
        h = w = None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise CnnzooError(
            f"{option} must be a positive side, (height, width) or text like '32x32', got {value!r}"
        )
    return (h, w)


def format_size(chw: tuple[int, ...]) -> str:
    """``(96, 55, 55)`` -> ``"55x55x96"``; a flat ``(4096,)`` -> ``"4096"``."""
    if len(chw) == 3:
        c, h, w = chw
        return f"{h}x{w}x{c}"
    return "x".join(str(s) for s in chw)


def format_count(n: int) -> str:
    """An integer with thousands separators, as the notes print parameter counts: ``34,944``."""
    return f"{n:,}"


def format_short(x: float, unit: str = "") -> str:
    """The notes' rounding to three significant figures: ``854M``, ``3.2M``, ``150K``."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:g}{unit}"


def format_megabytes(n: float) -> str:
    """Bytes as decimal megabytes with one decimal, as the notes write memory: ``"2.3 MB"``."""
    return f"{n / 1e6:.1f} MB"
