"""Time to accuracy on Fashion-MNIST: LeNet-5 in the plain loop vs `cnnzoo train`'s loop.

The plain loop trains the paper's tanh LeNet-5 for 5 epochs on the 60,000 training images; cnnzoo
trains the recipe ``lenet-91`` and is then scored with flip test-time augmentation, and that
evaluation counts in its wall time. The two alternate for a few rounds (seeds 0, 1, ...); the
table gives each round and the medians, all on the 10,000 test images.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

import cnnzoo
from cnnzoo.data import load_data
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.evaluate import evaluate
from cnnzoo.train.loop import fit
from cnnzoo.train.recipes import RECIPES

from . import plain_loop
from .common import Section, fashion_tensors

RECIPE = "lenet-91"


def run(quick: bool = False) -> Section:
    data = fashion_tensors()
    if data is None:
        return Section(
            "Fashion-MNIST time to accuracy", [], ["skipped: Fashion-MNIST not installed"]
        )
    xtr, ytr, xte, yte = data
    recipe = RECIPES[RECIPE]
    limit = 6000 if quick else None
    rounds = 1 if quick else 5
    plain_epochs = 1 if quick else 5  # the plain loop's budget
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    bundle = load_data(
        recipe["data"],
        input_size=(1, 32, 32),
        augment=recipe["augment"],
        val_fraction=recipe["val_fraction"],
        limit=limit,
    )
    args = recipe["model_arg"]
    runs: dict[str, list[dict]] = {"plain": [], "cnnzoo": []}
    for seed in range(rounds):
        torch.manual_seed(seed)
        model = cnnzoo.create_model("lenet5")
        plain = plain_loop.train(model, xtr, ytr, epochs=plain_epochs, batch=128, max_lr=0.1)
        runs["plain"].append(
            {
                "round": seed,
                "run": f"plain loop, lenet5 (tanh), {plain_epochs} epochs",
                "test accuracy": plain_loop.accuracy(model, xte, yte),
                "wall s": plain["seconds"],
            }
        )
        config = TrainConfig.from_dict(  # the recipe's TrainConfig keys, the others dropped
            {
                **recipe,
                "seed": seed,
                "epochs": 1 if quick else recipe["epochs"],
                "progress": False,
                "plots": False,
                "tensorboard": False,
            }
        )
        torch.manual_seed(seed)
        model = cnnzoo.create_model("lenet5", **args)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            fit(model, bundle, config, tmp, model_name="lenet5", model_args=args)
            test = evaluate(model, bundle.test, bundle.classes, "cpu", 1024, tta="flip")
            wall = time.perf_counter() - start
        runs["cnnzoo"].append(
            {
                "round": seed,
                "run": f"cnnzoo fit --recipe {RECIPE}, {config.epochs} epochs, then flip TTA",
                "test accuracy": test["accuracy"],
                "wall s": wall,
            }
        )
    rows = [row for pair in zip(runs["plain"], runs["cnnzoo"], strict=True) for row in pair]
    medians = {
        kind: {
            "round": "median",
            "run": mine[0]["run"],
            "test accuracy": statistics.median(r["test accuracy"] for r in mine),
            "wall s": statistics.median(r["wall s"] for r in mine),
        }
        for kind, mine in runs.items()
    }
    rows += medians.values()
    plain_s, zoo_s = medians["plain"]["wall s"], medians["cnnzoo"]["wall s"]
    for row in rows:  # four places: the target is 0.91
        row["test accuracy"] = f"{row['test accuracy']:.4f}"
    return Section(
        "Fashion-MNIST: LeNet-5 time to accuracy",
        rows,
        [
            f"cnnzoo: `--recipe {RECIPE}` ({recipe['about']}); the plain loop: "
            "tanh LeNet-5, SGD Nesterov one-cycle lr 0.1, flips, label smoothing 0.1, batch 128",
            "cnnzoo's wall time includes a validation pass and a checkpoint every epoch and the "
            f"final flip-TTA test evaluation; median cnnzoo / plain time: {zoo_s / plain_s:.3f}",
        ],
    )
