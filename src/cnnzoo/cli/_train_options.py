"""The options of ``cnnzoo train`` (and ``finetune``): one per ``TrainConfig`` field, each with
its checked type. Kept apart from ``_options`` (data and model options every command shares) and
``_input_options`` (the model/input group of ``train``, re-exported here) so that each module
stays one job."""

from __future__ import annotations

import argparse
import inspect
import re
from dataclasses import MISSING, fields

from ..modeltable import declared_train_defaults
from ._args import (
    batch_augment_spec,
    decay,
    fraction,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    tta_spec,
)
from ._input_options import add_input_options

__all__ = ["RESUME_REFUSES", "add_config_options", "add_input_options", "config_overrides"]

# the checked type of each TrainConfig option that is not a plain string (the config checks
# every value again, for Python callers)
OPTION_TYPES = {
    **dict.fromkeys(
        ("epochs", "batch_size", "eval_batch_size", "step_size", "threads", "ema_every"),
        positive_int,
    ),
    **dict.fromkeys(("patience", "num_workers", "seed"), nonneg_int),
    **dict.fromkeys(("lr", "grad_clip", "gamma", "bn_bias_lr_mult"), positive_float),
    **dict.fromkeys(("weight_decay", "warmup_epochs", "min_lr", "aux_weight"), nonneg_float),
    **dict.fromkeys(("momentum", "label_smoothing"), fraction),
    "ema": decay,
    "batch_augment": batch_augment_spec,
    "test_tta": tta_spec,
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
    "freeze_bn_scales": "train the BN scales as usual",
}
# options a resume refuses: they describe the data and the model, which the run fixed
RESUME_REFUSES = ("data", "img_size", "in_chans", "augment", "model_arg", "limit",
                  "val_fraction", "out", "recipe", "pretrained")  # fmt: skip


def config_field_help() -> dict[str, str]:
    """The comment after each ``TrainConfig`` field, read from its source."""
    from ..train.config import TrainConfig

    src = inspect.getsource(TrainConfig)
    return dict(re.findall(r"^\s+(\w+): [^=]+= [^#\n]+# (.+)$", src, flags=re.M))


def add_config_options(
    p: argparse.ArgumentParser, skip: tuple[str, ...] = (), model_defaults: bool = False
) -> None:
    """One option per ``TrainConfig`` field; defaults are None so a resume can tell what was set.
    A boolean field has both forms: ``--amp`` / ``--no-amp``, each with its own help.
    ``model_defaults``: the command takes the defaults a model declares, and each help names them
    beside the general default."""
    from ..train.config import INITS, TrainConfig

    helps = config_field_help()
    declared = declared_train_defaults() if model_defaults else {}
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
        kind = OPTION_TYPES.get(f.name, str)
        choices = INITS if f.name == "init" else None
        own = "".join(f"; {m}'s own: {v}" for m, v in declared.get(f.name, []))
        g.add_argument(
            flag, type=kind, choices=choices, default=None, help=f"{h} (default: {default}{own})"
        )


def config_overrides(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` options given on the command line."""
    from ..train.config import TrainConfig

    values = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    return {k: v for k, v in values.items() if v is not None}
