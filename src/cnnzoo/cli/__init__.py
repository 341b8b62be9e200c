"""The ``cnnzoo`` command line. Each subcommand lives in a module of this package that defines
``register(subparsers)``; user errors print one line and exit with status 2, never a traceback.

Start-up is kept short: ``cnnzoo --help`` imports no subcommand module, and running a command
imports only the module that defines it (``calc`` never imports torch). ``HELP`` gives each
command's module and one-line help for that; a test checks it against the modules themselves.
"""

from __future__ import annotations

import argparse
import difflib
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
    "profile",
    "convert",
    "compare",
    "explore",
    "train",
    "evaluate",
    "predict",
    "features",
    "export",
    "neighbors",
    "viz",
    "finetune",
]

# command -> (module, one-line help), so that `cnnzoo --help` and `cnnzoo CMD` need not import
# every module. A module of COMMANDS none of whose commands is listed here is imported (slower,
# still correct); tests/test_cli_startup.py checks each entry against the module's own help.
HELP = {
    "list": ("models", "list registered models: name, parameters, input size, paper"),
    "show": ("models", "print a model's module tree"),
    "demo": ("demo", "train LeNet-5 on Fashion-MNIST (or digits), evaluate, predict"),
    "calc": ("calc", "the lecture's calculators: conv, pool, fc, rf, stack, separable, inception"),
    "summary": (
        "summary",
        "per-layer output volume, parameters with formula, MACs, memory, receptive field",
    ),
    "profile": (
        "profile",
        "time per layer beside its MACs: GFLOP/s, bytes moved, intensity, roofline (measured)",
    ),
    "convert": ("convert", "turn a torchvision/timm weight file into a cnnzoo checkpoint"),
    "compare": (
        "compare",
        "compare models: parameters, MACs, memory, receptive field, published ImageNet top-1",
    ),
    "explore": (
        "explore",
        "write web pages to explore models: table, graph, receptive fields, memory",
    ),
    "train": (
        "train",
        "train a model on a dataset (checkpoints, metrics.csv, TensorBoard, curves.png)",
    ),
    "evaluate": (
        "evaluate",
        "accuracy, top-5, per-class accuracy and confusion matrix of checkpoints (ensemble)",
    ),
    "predict": ("predict", "top-k classes with probabilities for image files"),
    "features": (
        "features",
        "embed every image of a dataset with a model (pre-logits or any layer) into a .npz",
    ),
    "export": (
        "export",
        "export to ONNX, TorchScript or torch.export, checked against the PyTorch model",
    ),
    "neighbors": (
        "neighbors",
        "nearest neighbours in feature space (exact, L2 or cosine), as a list and a grid",
    ),
    "viz": ("viz", "pictures: first-layer filters, activation maps (PNG)"),
    "finetune": (
        "finetune",
        "fine-tune a checkpoint or torchvision/timm weights on new classes (or linear probe)",
    ),
}

# Commands that train or embed on the CPU: cnnzoo.threads picks their thread count.
THREADED = {"train", "finetune", "features", "demo"}


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = OneLineParser(
        prog="cnnzoo",
        description="The classic CNN architectures: build, explain, train, evaluate, reuse.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, sub


def _commands() -> dict[str, str | None]:
    """Every command name in listing order -> its module, or None for a module not in HELP."""
    out: dict[str, str | None] = {}
    for module in COMMANDS:
        names = [name for name, (mod, _) in HELP.items() if mod == module]
        for name in names or [module]:
            out[name] = module if names else None
    return out


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, every subcommand module imported; with ``command``, only that
    command's module is imported and the others are listed by name and help alone."""
    return _build(command)[0]


def _build(command: str | None) -> tuple[argparse.ArgumentParser, list[str]]:
    parser, sub = _parser()
    if command is None:
        for module in COMMANDS:
            importlib.import_module(f"{__name__}.{module}").register(sub)
        return parser, list(sub.choices)
    module = HELP[command][0] if command in HELP else command
    if module in COMMANDS:
        importlib.import_module(f"{__name__}.{module}").register(sub)
    for name, mod in _commands().items():
        if name in sub.choices:
            continue
        if mod is None:  # not in HELP: its module must say what its commands are
            importlib.import_module(f"{__name__}.{name}").register(sub)
        else:
            sub.add_parser(name, help=HELP[name][1], add_help=False)
    return parser, list(sub.choices)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    parser, commands = _build(command or "")
    if command is not None and command not in commands:  # `cnnzoo summery`
        close = difflib.get_close_matches(command, commands, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"commands: {', '.join(commands)}"
        parser.error(f"unknown command {command!r}; {hint}")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        if args.command in THREADED:
            from ..threads import apply_threads

            apply_threads(getattr(args, "threads", None))
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
