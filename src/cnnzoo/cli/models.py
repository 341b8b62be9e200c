"""``cnnzoo list`` and ``cnnzoo show``: what the zoo holds."""

from __future__ import annotations

import argparse
import difflib

from ..notation import format_count, format_size
from ._args import nonneg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models: name, parameters, input size, paper")
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'res*'")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="print a model's module tree")
    p.add_argument("name")
    p.add_argument("--num-classes", type=nonneg_int, default=None)
    p.set_defaults(func=cmd_show)


def count_params(model) -> int:
    """Parameters, a tensor shared by several modules counted once."""
    return sum(p.numel() for p in model.parameters())


def cmd_list(args: argparse.Namespace) -> int:
    # From the generated table (cnnzoo.modeltable): no torch, no model built.
    from ..errors import UnknownModelError
    from ..modeltable import model_rows

    found = model_rows(args.pattern)
    if not found:
        names = [r["name"] for r in model_rows()]
        stem = args.pattern.strip("*?")
        close = [n for n in names if stem and n.startswith(stem)][:5]
        close = close or difflib.get_close_matches(stem, names, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"no model matches {args.pattern!r}{hint}")
    rows = [
        (r["name"], format_count(r["params"]), format_size(tuple(r["input_size"])), r["paper"])
        for r in found
    ]
    widths = [max(len(r[i]) for r in rows + [("model", "params", "input", "")]) for i in range(3)]
    print(f"{'model':<{widths[0]}}  {'params':>{widths[1]}}  {'input':<{widths[2]}}  paper")
    for name, params, size, paper in rows:
        print(f"{name:<{widths[0]}}  {params:>{widths[1]}}  {size:<{widths[2]}}  {paper}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import torch

    from ..registry import create_model, get_model_info

    info = get_model_info(args.name)
    model = create_model(args.name, num_classes=args.num_classes, device="meta").eval()
    # One pass on the meta device: the output shape without allocating or computing anything.
    try:
        with torch.no_grad():
            out = format_size(model(torch.empty(1, *info.input_size, device="meta")).shape[1:])
    except (RuntimeError, NotImplementedError):  # an operation without a meta kernel
        out = "?"
    size = format_size(info.input_size)
    print(f"# {info.name}: {info.paper}")
    print(f"# input {size} -> output {out}, ", end="")
    print(f"{count_params(model):,} parameters")
    print(model)
    return 0
