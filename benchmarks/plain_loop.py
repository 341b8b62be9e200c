"""The baseline: the training loop a user writes by hand in plain PyTorch.

SGD with Nesterov momentum, a one-cycle schedule, random horizontal flips, label smoothing,
batch 128, the data as tensors in memory. cnnzoo's trainer is measured against this, side by side.
"""

from __future__ import annotations

import time

import torch
from torch import nn


def _flip(x: torch.Tensor) -> torch.Tensor:
    mask = torch.rand(x.shape[0], 1, 1, 1) < 0.5
    return torch.where(mask, x.flip(3), x)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            correct += (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
    return correct / len(x)


def train(
    model: nn.Module,
    xtr: torch.Tensor,
    ytr: torch.Tensor,
    epochs: int,
    batch: int = 128,
    max_lr: float = 0.1,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.1,
    max_steps: int | None = None,
) -> dict:
    """Train in place; returns images/s and wall seconds (``max_steps`` cuts each epoch short)."""
    steps_per_epoch = len(xtr) // batch
    if max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps)
    opt = torch.optim.SGD(
        model.parameters(), lr=max_lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xtr))
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            x, y = _flip(xtr[idx]), ytr[idx]
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images_per_s": seen / seconds}


def main(argv: list[str] | None = None) -> int:
    """The loop as a script a user runs: ``python -m benchmarks.plain_loop`` trains the tanh
    LeNet-5 for 5 epochs on Fashion-MNIST and prints its test accuracy (the process is what
    benchmarks/time_to_accuracy.py times, start-up included)."""
    import argparse

    import cnnzoo

    from .common import fashion_tensors

    parser = argparse.ArgumentParser(prog="python -m benchmarks.plain_loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, help="at most this many images of each split")
    args = parser.parse_args(argv)
    xtr, ytr, xte, yte = fashion_tensors()
    if args.limit:
        xtr, ytr, xte, yte = (
            xtr[: args.limit],
            ytr[: args.limit],
            xte[: args.limit],
            yte[: args.limit],
        )
    torch.manual_seed(args.seed)
    model = cnnzoo.create_model("lenet5")
    train(model, xtr, ytr, epochs=args.epochs)
    print(f"test accuracy {accuracy(model, xte, yte):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
