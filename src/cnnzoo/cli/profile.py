"""``cnnzoo profile MODEL``: the time of every row of the analyzer's table, measured here."""

from __future__ import annotations

import argparse
import sys

from ._args import input_size, nonneg_int, output_file, positive_int

FORMATS = ("table", "markdown", "csv", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="time per layer beside its MACs: GFLOP/s, bytes moved, intensity, roofline (measured)",
        description="Run a model of the zoo for real (random weights, random input) and time "
        "every row of `cnnzoo summary`'s table: medians over repeats after a warm-up, with the "
        "interquartile range. The rest of the measured whole step is shown as 'outside "
        "layers', with a note when it exceeds 10%. Timings vary with the machine's load: "
        "compare within one run (docs/anatomy.md says how to read the columns).",
    )
    p.add_argument("name", help="registered model name (see `cnnzoo list`)")
    p.add_argument(
        "--input",
        type=input_size,
        default=None,
        metavar="HxWxC",
        help="input size in the lecture's notation, e.g. 224x224x3 (default: the model's)",
    )
    p.add_argument("--batch", type=positive_int, default=8, help="batch size (default 8)")
    p.add_argument("--train", action="store_true", help="time a training step (forward+backward)")
    p.add_argument("--repeats", type=positive_int, default=10, help="timed runs (default 10)")
    p.add_argument("--warmup", type=nonneg_int, default=2, help="untimed runs first (default 2)")
    p.add_argument(
        "--stat",
        choices=("median", "mean"),
        default="median",
        help="of the repeats (default median; means add up however a busy machine stalls)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch CPU threads (default: the cores no other process is using)",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument(
        "--plot",
        type=output_file,
        default=None,
        metavar="PNG",
        help="also measure this machine's ceilings and draw the rows on its roofline",
    )
    p.set_defaults(func=cmd_profile)


def cmd_profile(args: argparse.Namespace) -> int:
    from ..analysis.profile import profile
    from .summary import zoo_model

    model, _, size = zoo_model(args.name, args.input, None, "profile", device="cpu")
    result = profile(
        model,
        size,
        batch=args.batch,
        train=args.train,
        repeats=args.repeats,
        warmup=args.warmup,
        name=args.name,
        statistic=args.stat,
    )
    print(result.render(args.format), end="")
    if args.plot:
        from ..analysis.ceilings import measure
        from ..analysis.roofline import plot_roofline

        path = plot_roofline(result, measure(), args.plot)
        print(f"cnnzoo profile: wrote {path}", file=sys.stderr)
    return 0
