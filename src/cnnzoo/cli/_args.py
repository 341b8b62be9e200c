"""Argument types for the command line: numbers, sizes, specs and output paths checked where
they are parsed.

Each type refuses what no command can use (NaN, infinity, a negative count, a zero batch, an
impossible size, a folder that cannot be written) with a message that names the value and the
range, so argparse prints one line and exits with status 2. The text types only wrap the library's
own parsers and checks (``cnnzoo.notation``, ``cnnzoo.paths``, the tricks), imported when used.
"""

from __future__ import annotations

import argparse
import importlib
import math
from collections.abc import Callable


def _number(
    kind: type, low: float | None, high: float | None, low_open: bool, what: str, high_open=False
):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


positive_int: Callable[[str], int] = _number(int, 0, None, True, "a positive integer")
nonneg_int: Callable[[str], int] = _number(int, 0, None, False, "an integer >= 0")
positive_float: Callable[[str], float] = _number(float, 0.0, None, True, "a positive number")
nonneg_float: Callable[[str], float] = _number(float, 0.0, None, False, "a number >= 0")
fraction: Callable[[str], float] = _number(float, 0.0, 1.0, False, "a number in [0, 1]")
# a share that must leave something on both sides (the validation split of the training images)
open_fraction: Callable[[str], float] = _number(float, 0.0, 1.0, True, "a number in (0, 1)", True)
finite_float: Callable[[str], float] = _number(float, None, None, False, "a finite number")
decay: Callable[[str], float] = _number(float, 0.0, 1.0, True, "a decay in (0, 1]")


def _checked(check: Callable[[str], object], what: str, prefix: str = "") -> Callable[[str], str]:
    """A text option checked by one of cnnzoo's parsers (``check`` raises ``CnnzooError``, whose
    message loses ``prefix``), handed on as given (the command reads it as before)."""

    def parse(text: str) -> str:
        from ..errors import CnnzooError

        try:
            check(text)
        except CnnzooError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(prefix)) from None
        return text

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


def _library(module: str, name: str, *args, **kwargs) -> Callable[[str], object]:
    """``cnnzoo.MODULE.NAME(text, *args, **kwargs)``, a parser or check of the library, imported
    when first called (``--help`` and ``calc`` import none of them)."""
    return lambda text: getattr(importlib.import_module(f"cnnzoo.{module}"), name)(
        text, *args, **kwargs
    )


# test-time views (none, flip, translate, joined by ','): --tta, --test-tta
tta_spec: Callable[[str], str] = _checked(
    _library("train.tricks.tta", "parse_tta"), "test-time views"
)
# augmentation on the batch (flip-alt, flip, translate[:N], joined by '+' or ','): --batch-augment
batch_augment_spec: Callable[[str], str] = _checked(
    _library("train.tricks.augment", "parse_augment"), "a batch augmentation"
)


def _size_text(option: str, max_side: int, what: str) -> Callable[[str], str]:
    """A size option read by ``cnnzoo.notation.parse_size`` (sides from 1 to ``max_side``)."""
    check = _library("notation", "parse_size", option=option, max_side=max_side)
    return _checked(check, what, prefix=f"{option}: ")


# Input sides of a network: beyond 4096 pixels an image no longer fits any CNN's memory budget.
img_size: Callable[[str], str] = _size_text("--img-size", 4096, "a size H or HxW")
# A network's input in the lecture's notation (HxWxC, HxW or H).
input_size: Callable[[str], str] = _size_text("--input", 4096, "a size HxWxC or HxW")
# A chart in pixels; 8000 on a side is already a 256-megabyte picture.
plot_size: Callable[[str], str] = _size_text("--plot-size", 8000, "a size WxH in pixels")


def _writable(kind: str, keep_runs: bool = True) -> Callable[[str], str]:
    """An output path (``kind`` "file" or "dir") that ``cnnzoo.paths.check_writable`` accepts:
    its nearest existing folder can really hold a new file, and it is no run's checkpoint."""
    check = _library("paths", "check_writable", kind, keep_runs)
    return _checked(check, f"a writable {kind} path")


output_file: Callable[[str], str] = _writable("file")
output_dir: Callable[[str], str] = _writable("dir")
# convert's output: checkpoint.check_weights_target decides about a run's files, with --force
weights_file: Callable[[str], str] = _writable("file", keep_runs=False)


# An input file read as a whole (a directory or a FIFO is refused without opening it).
input_file: Callable[[str], str] = _checked(_library("paths", "check_readable"), "a readable file")


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``cnnzoo train: error: ...``)."""

    def error(self, message: str):  # noqa: D401  (argparse's signature)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
