"""Data loading must never be the bottleneck: loader images/s vs LeNet-5's training images/s."""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnzoo
from cnnzoo.data import load_data
from cnnzoo.data.datasets import make_loader
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.loop import train_one_epoch
from cnnzoo.train.schedule import build_optimizer

from .common import Section

BATCH = 128


def _loader_rate(dataset, batches: int) -> float:
    loader = make_loader(dataset, BATCH, shuffle=True)
    seen, start = 0, time.perf_counter()
    for i, (x, _) in enumerate(loader):
        seen += len(x)
        if i + 1 == batches:
            break
    return seen / (time.perf_counter() - start)


def _folder(root: Path, classes: int, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / "train" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(d / f"{i}.png")


def run(quick: bool = False) -> Section:
    batches = 20 if quick else 200
    rows = []
    spec = "fashion-mnist" if Path("/usr/share/datasets/fashion-mnist").exists() else "digits"
    bundle = load_data(spec, input_size=(1, 32, 32), augment="basic")
    # LeNet-5's training rate, the figure the loader must beat by 3x
    config = TrainConfig(batch_size=BATCH, lr=0.05, progress=False)
    model = cnnzoo.create_model("lenet5")
    opt = build_optimizer(model, config)
    loader = make_loader(bundle.train, BATCH, shuffle=True)
    train_rate = train_one_epoch(
        model, list(itertools.islice(loader, batches // 4)), opt, config, torch.device("cpu")
    )["images_per_s"]
    rate = _loader_rate(bundle.train, batches)
    rows.append(
        {
            "loader": f"{spec} (in memory, crop+flip)",
            "images/s": rate,
            "LeNet-5 training images/s": train_rate,
            "ratio": rate / train_rate,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        per_class = 50 if quick else 500
        _folder(Path(tmp), 10, per_class)
        start = time.perf_counter()
        folder = load_data(tmp, input_size=(1, 32, 32), augment="basic")
        decode = 10 * per_class / (time.perf_counter() - start)
        rate = _loader_rate(folder.train, batches)
        rows.append(
            {
                "loader": f"image folder, {10 * per_class} PNGs, decoded once at {decode:,.0f}/s",
                "images/s": rate,
                "LeNet-5 training images/s": train_rate,
                "ratio": rate / train_rate,
            }
        )
    return Section(
        "Data loading vs training (target: loader >= 3x LeNet-5's training rate)",
        rows,
        [f"batch {BATCH}; images are decoded once into a uint8 tensor, batches are tensor ops"],
    )
