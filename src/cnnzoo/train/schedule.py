"""Optimisers and learning-rate schedules of the lecture's recipes.

``LRSchedule`` computes every step's rate as a factor of each parameter group's own base rate
(``initial_lr``), so per-group rates (a fine-tuned head at 10x) keep their ratio under every
schedule. The factor is warm-up x (step | cosine | one-cycle) x the plateau decays so far, or the
speedruns' ``warmup-linear`` (``cnnzoo.train.tricks.schedule``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .config import TrainConfig
from .tricks.schedule import warmup_linear_factor

FUSED = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)  # torch has fused steps for these


def build_optimizer(
    model: nn.Module,
    config: TrainConfig,
    param_groups: Iterable[dict] | None = None,
    lr_mult: dict[str, float] | None = None,
) -> torch.optim.Optimizer:
    """The optimiser of ``config.opt`` over the parameters that require a gradient.

    ``param_groups``: torch-style groups (``{"params": [...], "lr": 0.1}``; ``"lr_mult"`` scales
    ``config.lr`` instead). ``lr_mult``: ``{"fc": 10.0}`` multiplies the rate of every parameter
    whose name starts with a key (first match wins). Frozen parameters are left out either way, so
    they are never touched, not even by weight decay.
    """
    if param_groups is not None:
        groups = []
        for g in param_groups:
            g = dict(g)
            g["params"] = [p for p in g["params"] if p.requires_grad]
            if "lr" not in g:
                g["lr"] = config.lr * g.pop("lr_mult", 1.0)
            if g["params"]:
                groups.append(g)
    else:
        by_mult: dict[float, list[nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                mult = next((m for k, m in (lr_mult or {}).items() if name.startswith(k)), 1.0)
                by_mult.setdefault(mult, []).append(p)
        groups = [{"params": ps, "lr": config.lr * m} for m, ps in by_mult.items()]
    if not groups:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    wd = config.weight_decay
    if config.opt == "sgd":
        kind, kwargs = (
            torch.optim.SGD,
            {"momentum": config.momentum, "nesterov": config.nesterov and config.momentum > 0},
        )
    elif config.opt == "rmsprop":  # TensorFlow-style constants, as torchvision's references use
        kind, kwargs = (
            torch.optim.RMSprop,
            {"alpha": 0.9, "eps": 0.0316, "momentum": config.momentum},
        )
    else:
        kind, kwargs = (torch.optim.AdamW if config.opt == "adamw" else torch.optim.Adam), {}
    opt = _make(kind, groups, config, lr=config.lr, weight_decay=wd, **kwargs)
    for g in opt.param_groups:
        g.setdefault("initial_lr", g["lr"])
    return opt


def _make(kind: type, groups: list[dict], config: TrainConfig, **kwargs) -> torch.optim.Optimizer:
    """``kind(groups, **kwargs)`` with torch's fused step where ``config.fused`` and torch has one
    for ``kind`` on these parameters (SGD, Adam, AdamW on CPU and CUDA), else its multi-tensor
    ``foreach`` step. On the CPU torch's default is a loop over the parameters: inside ResNet-18's
    training loop the fused SGD step takes 3 ms instead of 11 (docs/benchmarks.md)."""
    if not config.fused:
        return kind(groups, **kwargs)
    params = [p for g in groups for p in g["params"]]
    fusable = kind in FUSED and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )
    return kind(groups, **({"fused": True} if fusable else {"foreach": True}), **kwargs)


class LRSchedule:
    """Per-step learning rates; ``step(global_step)`` before each batch, ``epoch_end(val_acc)``
    after each validation (the plateau rule: divide by ``1/gamma`` after ``patience`` epochs
    without a better validation accuracy, as AlexNet was trained)."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
    ) -> None:
        self.optimizer, self.config, self.steps_per_epoch = optimizer, config, steps_per_epoch
        self.plateau_scale = 1.0  # product of the plateau decays so far
        self.best = -math.inf  # best validation accuracy seen (plateau rule)
        self.bad_epochs = 0  # epochs since it last improved

    def factor(self, step: int) -> float:
        """The multiplier of the base rate at global step ``step`` (0-based)."""
        c = self.config
        t = step / self.steps_per_epoch  # epochs done, fractional
        floor = c.min_lr / c.lr
        if c.sched == "onecycle":  # rise from lr/25 over 30% of the run, cosine down to floor
            total, rise = c.epochs, 0.3 * c.epochs
            if t < rise:
                return _cos_interp(1 / 25, 1.0, t / rise)
            return _cos_interp(1.0, max(floor, 1e-4), min(1.0, (t - rise) / (total - rise)))
        if c.sched == "warmup-linear":  # the speedruns': up over warmup_epochs, down to the floor
            warm = min(c.warmup_epochs, c.epochs)
            return warmup_linear_factor(t, c.epochs, warm, end=floor)
        f = 1.0
        if t < c.warmup_epochs:
            f = 0.01 + 0.99 * t / c.warmup_epochs
        if c.sched == "step":
            f *= c.gamma ** (int(t) // c.step_size)
        elif c.sched == "cosine":
            span = max(c.epochs - c.warmup_epochs, 1e-9)
            f *= _cos_interp(1.0, floor, min(1.0, max(0.0, t - c.warmup_epochs) / span))
        elif c.sched == "plateau":
            f *= self.plateau_scale
        return f

    def step(self, step: int) -> None:
        f = self.factor(step)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def epoch_end(self, val_acc: float) -> None:
        if self.config.sched != "plateau":
            return
        if val_acc > self.best:
            self.best, self.bad_epochs = val_acc, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.config.patience:
            self.plateau_scale *= self.config.gamma
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {
            "plateau_scale": self.plateau_scale,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])


def _cos_interp(start: float, end: float, frac: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac))
