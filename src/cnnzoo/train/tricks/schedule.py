"""The speedruns' learning-rate shape: a linear warm-up, then a linear decay to the end.

Page's ResNet-9 rises linearly from 0 to its peak at epoch 5 of 24 and falls linearly to 0;
airbench starts at 0.2x, peaks at 23% of the run and ends at 0.07x. ``warmup_linear_factor`` is
that piecewise-linear factor of the base rate, in the form ``cnnzoo.train.schedule.LRSchedule``
computes its factors (epochs done, fractional).
"""

from __future__ import annotations

WARMUP_START = 0.01  # as TrainConfig's warm-up: from lr/100


def warmup_linear_factor(
    epochs_done: float,
    total_epochs: float,
    warmup_epochs: float,
    start: float = WARMUP_START,
    end: float = 0.0,
) -> float:
    """The multiplier of the base rate after ``epochs_done`` (fractional) epochs: ``start`` ->
    1 linearly over ``warmup_epochs``, then 1 -> ``end`` linearly at ``total_epochs``, and
    ``end`` after it."""
    if total_epochs <= 0:
        raise ValueError(f"total_epochs must be positive, got {total_epochs}")
    if not 0 <= warmup_epochs <= total_epochs:
        raise ValueError(f"warmup_epochs must be in [0, {total_epochs}], got {warmup_epochs}")
    t = max(0.0, float(epochs_done))
    if t < warmup_epochs:
        return start + (1.0 - start) * t / warmup_epochs
    if t >= total_epochs:
        return end
    span = total_epochs - warmup_epochs
    return 1.0 + (end - 1.0) * (t - warmup_epochs) / span


class WarmupLinear:
    """Per-step factors of ``warmup_linear_factor`` for a run of ``steps_per_epoch`` steps an
    epoch; ``step(i)`` sets every group's ``lr`` to its ``initial_lr`` times the factor (the
    convention of ``LRSchedule``: per-group rates keep their ratio)."""

    def __init__(
        self,
        optimizer,
        total_epochs: float,
        warmup_epochs: float,
        steps_per_epoch: int,
        start: float = WARMUP_START,
        end: float = 0.0,
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.optimizer, self.steps_per_epoch = optimizer, steps_per_epoch
        self.total, self.warmup, self.start, self.end = total_epochs, warmup_epochs, start, end
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        warmup_linear_factor(0.0, total_epochs, warmup_epochs)  # check the arguments now

    def factor(self, step: int) -> float:
        t = step / self.steps_per_epoch
        return warmup_linear_factor(t, self.total, self.warmup, self.start, self.end)

    def step(self, step: int) -> None:
        f = self.factor(step)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f
