"""Training throughput: cnnzoo's loop vs the plain hand-written loop, same architecture and batch.

For each model the contestants alternate (plain, cnnzoo default, cnnzoo with each speed option)
for a fixed number of steps after a warm-up, several rounds; the table gives median images/s and
the ratio to the plain loop measured in the same run.
"""

from __future__ import annotations

import itertools
import statistics

import torch
import torchvision

import cnnzoo
from cnnzoo.data import load_data
from cnnzoo.data.datasets import make_loader
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.loop import train_one_epoch
from cnnzoo.train.schedule import build_optimizer

from . import plain_loop
from .common import Section, fashion_tensors

BATCH = 128
# name, channels, the plain loop's model (torchvision's where it has the architecture)
MODELS = [
    ("lenet5", 1, lambda: cnnzoo.create_model("lenet5")),
    ("resnet20", 3, lambda: cnnzoo.create_model("resnet20", num_classes=10)),
    ("resnet18", 3, lambda: torchvision.models.resnet18(num_classes=10)),
]
MODES = {
    "default": {},  # channels-last and the fused optimiser step since these figures made them so
    "contiguous": {"channels_last": False},
    "unfused": {"fused": False},  # torch's per-parameter optimiser loop, as the plain loop has
    "amp-bf16": {"amp": True},
    "compile": {"compile": True},
    "amp+compile": {"amp": True, "compile": True},
}


def _plain_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    plain_loop.train(model, x, y, epochs=1, batch=BATCH, max_lr=0.05, max_steps=2)  # warm-up
    return plain_loop.train(model, x, y, epochs=1, batch=BATCH, max_lr=0.05, max_steps=steps)[
        "images_per_s"
    ]


def _cnnzoo_rate(name: str, chans: int, bundle, opts: dict, steps: int, warm: int) -> float:
    config = TrainConfig(batch_size=BATCH, lr=0.05, progress=False, **opts)
    model = cnnzoo.create_model(name, num_classes=10, in_chans=chans)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    net = torch.compile(model) if config.compile else model
    loader = make_loader(bundle.train, BATCH, shuffle=True, drop_last=True)
    device = torch.device("cpu")
    train_one_epoch(net, itertools.islice(loader, warm), optimizer, config, device)
    out = train_one_epoch(net, itertools.islice(loader, steps), optimizer, config, device)
    return out["images_per_s"]


def run(quick: bool = False) -> Section:
    steps, rounds = (3, 1) if quick else (30, 3)
    models = MODELS[:1] if quick else MODELS
    modes = {"default": {}} if quick else MODES
    data = fashion_tensors()
    rows, notes = [], []
    for name, chans, plain_model in models:
        bundle = load_data(
            "fashion-mnist" if data is not None else "digits",
            input_size=(chans, 32, 32),
            augment="flip",
            limit=BATCH * (steps + 10),
        )
        x = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
        y = torch.tensor([int(bundle.train[i][1]) for i in range(len(bundle.train))])
        rates: dict[str, list[float]] = {"plain": []}
        for _ in range(rounds):
            torch.manual_seed(0)
            rates["plain"].append(_plain_rate(plain_model(), x, y, steps))
            for mode, opts in modes.items():
                warm = 10 if opts.get("compile") else 2  # compilation happens in the warm-up
                try:
                    rate = _cnnzoo_rate(name, chans, bundle, opts, steps, warm)
                except Exception as err:  # an option this machine cannot run: say so
                    notes.append(f"{name} {mode}: failed ({type(err).__name__}: {err})"[:200])
                    rate = float("nan")
                rates.setdefault(mode, []).append(rate)
        base = statistics.median(rates["plain"])
        row = {"model": name, "plain loop img/s": base}
        for mode in modes:
            med = statistics.median(rates[mode])
            row[f"cnnzoo {mode} img/s"] = med
            row[f"{mode} / plain"] = med / base
        rows.append(row)
    notes.append(
        f"batch {BATCH}, Fashion-MNIST at 32x32 in memory, {steps} timed steps after a warm-up, "
        f"median of {rounds} alternating round(s); plain = benchmarks/plain_loop.py"
    )
    return Section("Training throughput (CPU): cnnzoo vs a plain PyTorch loop", rows, notes)
