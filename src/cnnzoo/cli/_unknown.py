"""Arguments a command does not take: said by that command's own parser (``calc conv``'s, not the
top one's), in one line, with the closest option it has."""

from __future__ import annotations

import argparse
import difflib

# options that one command names differently from another (train's --img-size, summary's --input)
SYNONYMS = {"--img-size": "--input", "--input-size": "--input", "--input": "--img-size"}


def refuse_unknown(parser: argparse.ArgumentParser, argv: list[str], extra: list[str]) -> None:
    """Exit with status 2 naming ``extra`` (what ``parse_known_args`` left of ``argv``) and, for
    each misspelt option, the closest one of the deepest command named in ``argv``."""
    parser = _innermost(parser, argv)
    options = [o for o in parser._option_string_actions if o.startswith("--")]
    bare = [o[2:] for o in options]  # compared without the dashes every option shares
    hints = []
    for arg in extra:
        name = arg.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        close = [SYNONYMS[name]] if SYNONYMS.get(name) in options else []
        close = close or ["--" + c for c in difflib.get_close_matches(name[2:], bare, 1, 0.6)]
        if close:
            hints.append(f"did you mean {close[0]} for {name}?")
    parser.error("; ".join([f"unrecognized arguments: {' '.join(extra)}", *hints]))


def _innermost(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the deepest subcommand named in ``argv`` (``calc conv``, ``viz filters``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = next((a for a in argv if a in action.choices), None)
            if name is not None:
                return _innermost(action.choices[name], argv[argv.index(name) + 1 :])
    return parser
