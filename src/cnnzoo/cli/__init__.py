"""The ``cnnzoo`` command line. Each subcommand lives in a module of this package that defines
``register(subparsers)``; user errors print one line and exit with status 2, never a traceback.

Start-up is kept short: ``cnnzoo --help`` imports no subcommand module, and running a command
imports only the module that defines it (``calc`` never imports torch). ``_commands.HELP`` gives
each command's module and one-line help for that; a test checks it against the modules themselves.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import os
import sys

from ..errors import CnnzooError
from ._args import OneLineParser
from ._commands import COMMANDS, HELP, THREADED

__all__ = ["COMMANDS", "HELP", "THREADED", "build_parser", "main"]


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


def _build(command: str | None) -> tuple[argparse.ArgumentParser, dict]:
    """The parser and its subcommands' parsers by name."""
    parser, sub = _parser()
    if command is None:
        for module in COMMANDS:
            importlib.import_module(f"{__name__}.{module}").register(sub)
        return parser, sub.choices
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
    return parser, sub.choices


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    parser, commands = _build(command or "")
    if command is not None and command not in commands:  # `cnnzoo summery`
        close = difflib.get_close_matches(command, commands, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"commands: {', '.join(commands)}"
        parser.error(f"unknown command {command!r}; {hint}")
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, with the option it probably meant
        from ._unknown import refuse_unknown

        refuse_unknown(commands.get(args.command, parser), argv[1:], extra)
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
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # a writer without its own check (a picture, a report): the disk is full, say so
        print(f"cnnzoo {args.command}: error: {_disk_full(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnzoo {args.command}: interrupted", file=sys.stderr)
        return 130


def _disk_full(err: OSError) -> str:
    if err.filename:  # the library's one line for it, with the space needed and free
        from ..paths import write_error

        return str(write_error(err, err.filename))
    return "no space left on the device: free some space or write elsewhere"
