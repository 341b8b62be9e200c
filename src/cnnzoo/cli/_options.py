"""Options shared by the commands that train or load data (train, finetune, evaluate...), and
the small parsers of their values. Kept apart so that each command's module is its own job."""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import warnings
from dataclasses import MISSING, fields

from ._args import fraction, nonneg_float, nonneg_int, positive_float, positive_int

# the checked number type of each numeric TrainConfig option (the config checks them again)
NUMBER_TYPES = {
    "epochs": positive_int,
    "batch_size": positive_int,
    "eval_batch_size": positive_int,
    "step_size": positive_int,
    "threads": positive_int,
    "patience": nonneg_int,
    "num_workers": nonneg_int,
    "seed": nonneg_int,
    "lr": positive_float,
    "grad_clip": positive_float,
    "gamma": positive_float,
    "weight_decay": nonneg_float,
    "warmup_epochs": nonneg_float,
    "min_lr": nonneg_float,
    "aux_weight": nonneg_float,
    "momentum": fraction,
    "label_smoothing": fraction,
}
# what a --no-X option of a TrainConfig field does, said in full
NO_HELP = {
    "nesterov": "plain (heavy-ball) momentum instead of Nesterov's",
    "amp": "train in full float32 precision, without autocast",
    "compile": "run the model eagerly, without torch.compile",
    "deterministic": "allow torch's fastest kernels (a rerun may differ in the last digits)",
    "sync_bn": "under torchrun, keep each process's own BatchNorm batch statistics",
    "channels_last": "keep the NCHW memory format instead of channels-last",
    "fused": "torch's per-parameter optimiser step instead of one fused step",
    "progress": "no progress bar (each epoch's one-line summary is still printed)",
    "tensorboard": "write no TensorBoard events",
    "plots": "do not write curves.png",
}


def config_field_help() -> dict[str, str]:
    """The comment after each ``TrainConfig`` field, read from its source."""
    from ..train.config import TrainConfig

    src = inspect.getsource(TrainConfig)
    return dict(re.findall(r"^\s+(\w+): [^=]+= [^#\n]+# (.+)$", src, flags=re.M))


def add_config_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per ``TrainConfig`` field; defaults are None so a resume can tell what was set.
    A boolean field has both forms: ``--amp`` / ``--no-amp``, each with its own help."""
    from ..train.config import TrainConfig

    helps = config_field_help()
    g = p.add_argument_group("training (TrainConfig)")
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        h = helps.get(f.name, "")
        if f.type in ("bool", bool):
            on = f"{h} (default: {'on' if default else 'off'})"
            off = NO_HELP.get(f.name, f"turn {flag} off")
            g.add_argument(flag, dest=f.name, action="store_true", default=None, help=on)
            g.add_argument(
                "--no-" + f.name.replace("_", "-"),
                dest=f.name,
                action="store_false",
                default=None,
                help=off,
            )
            continue
        kind = NUMBER_TYPES.get(f.name, str)
        g.add_argument(flag, type=kind, default=None, help=f"{h} (default: {default})")


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


def config_overrides(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` options given on the command line."""
    from ..train.config import TrainConfig

    values = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    return {k: v for k, v in values.items() if v is not None}
