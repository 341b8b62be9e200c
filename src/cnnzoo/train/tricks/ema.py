"""An exponential moving average of a model's weights, optionally as lookahead.

``update(model)`` after an optimiser step folds the current weights into the average:
``avg = decay * avg + (1 - decay) * weight``. With ``lookahead=True`` the model's weights are then
set to the average (hlb-CIFAR10's and airbench's "lookahead" scheme: training continues from the
averaged point). Batch-norm running statistics are floating-point buffers of the state dict and
are averaged the same way (``buffers="average"``) or taken from the model as they are
(``buffers="copy"``); integer buffers (``num_batches_tracked``) are never averaged.

The averages live on the model's device, in the weights' dtype: nothing leaves the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

BUFFER_MODES = ("average", "copy")


class WeightEMA:
    """The running average of ``model``'s floating-point parameters and buffers.

    Args:
        model: the network being trained (the bare module, not a DDP or compiled wrapper: the
            state-dict keys must match those of the model given to ``update``).
        decay: weight of the old average at each update (0.99: an average over ~100 updates).
        every: average only on every ``every``-th call of ``update`` (airbench: every 5 steps).
        lookahead: after each average, copy it into the model.
        buffers: ``"average"`` the BN running statistics too, or ``"copy"`` the model's.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.99,
        every: int = 1,
        lookahead: bool = False,
        buffers: str = "average",
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if buffers not in BUFFER_MODES:
            raise ValueError(f"buffers must be one of {', '.join(BUFFER_MODES)}, got {buffers!r}")
        self.decay, self.every, self.lookahead, self.buffers = decay, every, lookahead, buffers
        self.calls = 0  # update() calls so far
        self.buffer_names = {n for n, _ in model.named_buffers()}
        self.shadow = {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> bool:
        """Fold ``model``'s weights into the average (``decay`` overrides the constructor's for
        this call, for a decay that warms up). Returns whether this call averaged."""
        self.calls += 1
        if self.calls % self.every:
            return False
        d = self.decay if decay is None else decay
        for k, v in model.state_dict().items():
            avg = self.shadow.get(k)
            if avg is None:
                continue
            if k in self.buffer_names and self.buffers == "copy":
                avg.copy_(v)
            else:
                avg.lerp_(v.detach().to(avg.dtype), 1.0 - d)
            if self.lookahead:
                v.copy_(avg)
        return True

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights (and buffers) into ``model``."""
        state = model.state_dict()
        for k, avg in self.shadow.items():
            state[k].copy_(avg)

    @contextlib.contextmanager
    def averaged(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block ``model`` holds the averaged weights (to validate or test with them);
        its own weights are put back afterwards, even on an exception."""
        state = model.state_dict()
        saved = {k: state[k].detach().clone() for k in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for k, v in saved.items():
                    state[k].copy_(v)

    def state_dict(self) -> dict:
        """The averages and the call count, for a checkpoint."""
        return {"calls": self.calls, "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.calls = int(state["calls"])
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for k, v in self.shadow.items():
            v.copy_(state["shadow"][k])
