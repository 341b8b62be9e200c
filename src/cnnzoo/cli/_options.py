"""Options shared by the commands that load data or models (train, finetune, evaluate...), and
the small parsers of their values; ``train``'s own are in ``_train_options``. Kept apart so that
each command's module is its own job."""

from __future__ import annotations

import argparse
import ast
import warnings

from ._args import positive_int


def add_data_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        required=required,
        help="fashion-mnist, mnist, cifar10, cifar100, digits, or an image folder",
    )
    g.add_argument("--data-dir", help="directory with the dataset files (IDX, CIFAR batches)")
    g.add_argument(
        "--limit",
        type=positive_int,
        help="use at most this many images of each split (train, val and test)",
    )
    g.add_argument("--strict", action="store_true", help="an unreadable image is an error")
    g.add_argument("--download", action="store_true", help="let torchvision download the data")


def add_pretrained_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="start a MODEL name from its published weights (create_model's "
        "pretrained=True) instead of random ones",
    )


def one_line_warnings() -> None:
    """Warnings (a skipped image) as one ``cnnzoo: warning: ...`` line, no source line."""
    warnings.formatwarning = lambda msg, cat, *a, **k: f"cnnzoo: warning: {msg}\n"


def parse_model_args(items: list[str], option: str = "--model-arg") -> dict:
    """``["act=relu6", "width_mult=0.5"]`` -> ``{"act": "relu6", "width_mult": 0.5}``.

    Values are Python literals read with ``ast.literal_eval``, which evaluates nothing else;
    anything that is not a literal is kept as a string.
    """
    from ..errors import CnnzooError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CnnzooError(f"{option} takes KEY=VALUE (e.g. act=relu6), got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a bare word: a string
    return out


def parse_img_size(text: str | None) -> tuple[int, int] | None:
    """``--img-size`` (H, HxW or HxWxC) as (H, W); None when not given."""
    from ..notation import parse_size

    return None if text is None else parse_size(text, option="--img-size").hw
