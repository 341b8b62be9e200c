"""``cnnzoo summary MODEL``: the lecture's per-layer table for a model of the zoo."""

from __future__ import annotations

import argparse
import sys

from ..errors import CnnzooError
from ..notation import parse_size
from ._args import nonneg_int, positive_int

FORMATS = ("table", "markdown", "csv", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-layer output volume, parameters with formula, MACs, memory, receptive field",
        description="The lecture's arithmetic for a model, computed on the meta device (no weights "
        "are allocated). FLOPs are always 2 x MACs.",
    )
    p.add_argument("name", help="registered model name (see `cnnzoo list`)")
    p.add_argument(
        "--input",
        default=None,
        metavar="HxWxC",
        help="input size in the lecture's notation, e.g. 227x227x3 or 224x224 (default: the "
        "size the model was designed for)",
    )
    p.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    p.add_argument("--depth", type=positive_int, default=None, help="group rows by module depth N")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument("--num-classes", type=nonneg_int, default=None, help="classifier outputs")
    p.set_defaults(func=cmd_summary)


def zoo_model(name: str, input_text: str | None, num_classes: int | None, command: str,
              device: str = "meta"):  # fmt: skip
    """The registered model ``name`` built for ``--input`` (in the lecture's notation, default the
    size it was designed for), its info, and the input size as (C, H, W); a size read as
    C x H x W is said in one line. Shared by the commands that take a model and an input size."""
    from ..summarytable import model_for_input

    return model_for_input(name, _size(name, input_text, command), num_classes, device)


def _size(name: str, input_text: str | None, command: str) -> tuple[int, int, int] | None:
    if not input_text:
        return None
    from ..registry import get_model_info

    given = parse_size(input_text, chans=get_model_info(name).input_size[0])
    if given.note:  # 3x227x227: read as C x H x W, and said so
        print(f"cnnzoo {command}: note: {given.note}", file=sys.stderr)
    return given.chw


def cmd_summary(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise CnnzooError(f"--batch must be at least 1, got {args.batch}")
    if args.depth is not None and args.depth < 1:
        raise CnnzooError(f"--depth must be at least 1, got {args.depth}")
    options = (args.input, args.batch, args.depth, args.format, args.num_classes)
    if options == (None, 1, None, "table", None):  # the defaults: stored, checked, no torch
        from ..summarytable import stored_summary

        text = stored_summary(args.name)
        if text is not None:
            print(text, end="")
            return 0
    print(live_summary(args.name, *options), end="")
    return 0


def live_summary(name: str, input_text: str | None = None, batch: int = 1,
                 depth: int | None = None, fmt: str = "table",
                 num_classes: int | None = None) -> str:  # fmt: skip
    """What ``cnnzoo summary`` prints, from an analysis run now (cnnzoo.summarytable stores it
    for the default options)."""
    from ..summarytable import summary_text

    return summary_text(name, _size(name, input_text, "summary"), batch, depth, fmt, num_classes)
