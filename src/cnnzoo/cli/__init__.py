"""The ``cnnzoo`` command line. Each subcommand lives in a module of this package that defines
``register(subparsers)``; user errors print one line and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import CnnzooError
from ._args import OneLineParser

# Subcommand modules, in the order ``cnnzoo --help`` lists them.
COMMANDS = [
    "models",
    "demo",
    "calc",
    "summary",
    "convert",
    "compare",
    "train",
    "evaluate",
    "predict",
    "features",
    "export",
    "neighbors",
    "viz",
    "finetune",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cnnzoo",
        description="The classic CNN architectures: build, explain, train, evaluate, reuse.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return args.func(args) or 0
    except CnnzooError as err:
        print(f"cnnzoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cnnzoo show vgg16 | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except KeyboardInterrupt:
        print(f"cnnzoo {args.command}: interrupted", file=sys.stderr)
        return 130
