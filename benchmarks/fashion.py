"""Time to accuracy on Fashion-MNIST: LeNet-5 in the plain loop vs `cnnzoo train`'s loop.

Both train from the same seed on the 60,000 training images and are scored on the 10,000 test
images; the table gives test accuracy and wall time side by side.
"""

from __future__ import annotations

import tempfile
import time

import torch

import cnnzoo
from cnnzoo.data import load_data
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.evaluate import evaluate
from cnnzoo.train.loop import fit

from . import plain_loop
from .common import Section, fashion_tensors

# The recipe `cnnzoo train lenet5 --data fashion-mnist` is benchmarked with (see docs/results.md).
LENET_RECIPE = dict(
    epochs=7, batch_size=128, opt="sgd", lr=0.1, nesterov=True, weight_decay=5e-4,
    sched="onecycle", label_smoothing=0.1,
)  # fmt: skip
LENET_ARGS = {"act": "relu"}  # ReLU trains faster than the paper's tanh (docs/results.md)


def run(quick: bool = False) -> Section:
    data = fashion_tensors()
    if data is None:
        return Section(
            "Fashion-MNIST time to accuracy", [], ["skipped: Fashion-MNIST not installed"]
        )
    xtr, ytr, xte, yte = data
    limit = 6000 if quick else None
    epochs = 1 if quick else 5  # the plain loop's budget
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    rows = []

    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5")
    plain = plain_loop.train(model, xtr, ytr, epochs=epochs, batch=128, max_lr=0.1)
    rows.append(
        {
            "run": f"plain loop, lenet5, {epochs} epochs",
            "test accuracy": plain_loop.accuracy(model, xte, yte),
            "train wall s": plain["seconds"],
            "images/s": plain["images_per_s"],
        }
    )

    bundle = load_data("fashion-mnist", input_size=(1, 32, 32), augment="flip", limit=limit)
    epochs = 1 if quick else LENET_RECIPE["epochs"]
    config = TrainConfig(**{**LENET_RECIPE, "epochs": epochs}, progress=False, plots=False,
                         tensorboard=False)  # fmt: skip
    model = cnnzoo.create_model("lenet5", **LENET_ARGS)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = fit(model, bundle, config, tmp, model_name="lenet5", model_args=LENET_ARGS)
        wall = time.perf_counter() - start
    test = evaluate(model, bundle.test, bundle.classes, torch.device("cpu"))
    rate = sum(r["images_per_s"] for r in out["history"]) / len(out["history"])
    rows.append(
        {
            "run": f"cnnzoo fit, lenet5 (ReLU), {epochs} epochs",
            "test accuracy": test["accuracy"],
            "train wall s": wall,
            "images/s": rate,
        }
    )
    return Section(
        "Fashion-MNIST: LeNet-5 time to accuracy",
        rows,
        [
            f"cnnzoo recipe: {LENET_RECIPE}, model {LENET_ARGS}, flips; the plain loop: "
            "tanh LeNet-5, SGD one-cycle lr 0.1, flips, label smoothing 0.1, 5 epochs",
            "cnnzoo's wall time includes a validation pass and checkpoint writes every epoch",
        ],
    )
