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
