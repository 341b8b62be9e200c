"""The model and input group of ``cnnzoo train``: augmentation, validation split, input size,
channels and ``create_model`` arguments (the ``TrainConfig`` options are in ``_train_options``)."""

from __future__ import annotations

import argparse

from ._args import img_size, open_fraction, positive_int


def add_input_options(p: argparse.ArgumentParser) -> None:
    """``train``'s model and input group: augmentation, validation split, size, channels and
    create_model arguments."""
    from ..data.transforms import AUGMENTS

    g = p.add_argument_group("model and input")
    g.add_argument(
        "--augment",
        choices=["auto", *AUGMENTS],
        default=None,
        help="training augmentation (default: the model's own where it declares one, as "
        "LeNet-5 declares none, else auto); auto: flips for Fashion-MNIST, random crop with "
        "padding + flip for CIFAR and image folders, none for digits; basic+erase adds random "
        "erasing (--batch-augment replaces it with augmentation on the batch)",
    )
    g.add_argument(
        "--val-fraction",
        type=open_fraction,
        default=None,
        help="fraction of the training split used to validate, above 0 and below 1: every run "
        "validates (default 0.1)",
    )
    g.add_argument("--img-size", type=img_size, help="input H or HxW (default: the model's)")
    g.add_argument("--in-chans", type=positive_int, help="input channels (default: the model's)")
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra create_model argument, e.g. drop_rate=0.2 (repeatable)",
    )
