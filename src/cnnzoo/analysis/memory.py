"""Training memory: what autograd keeps for the backward pass, plus weights, gradients, momentum.

The autograd term is measured, not guessed: a second meta-device pass runs the model in training
mode with gradients enabled under ``torch.autograd.graph.saved_tensors_hooks``, which is handed
every tensor an op saves for its backward (a convolution its input, a ReLU its output, a max-pool
its input and int64 indices, a batch norm its input and statistics...). Storages are counted once,
so an in-place ReLU that saves the same storage as the convolution before it, or a tensor saved by
several ops, costs its bytes once; the model's own parameters and buffers are left out of this
term (they are the "weights" term). Nothing is allocated: meta tensors have sizes but no data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from .trace import meta_state, temporarily_training


@dataclass(frozen=True)
class TrainingMemory:
    saved_bytes: int  # unique storages autograd keeps for backward (activations, masks, indices)
    weight_bytes: int  # parameters (trainable and frozen) and buffers
    grad_bytes: int  # one gradient per trainable parameter
    optimizer_bytes: int  # SGD with momentum: one buffer per trainable parameter
    extrapolated: bool = False  # batch 1 cannot train (batch norm on 1x1): from batches 2 and 3

    @property
    def total(self) -> int:
        return self.saved_bytes + self.weight_bytes + self.grad_bytes + self.optimizer_bytes


def storage_key(t: torch.Tensor) -> int:
    """An identity for the storage under ``t`` (views share it), valid while ``t`` is alive."""
    return t.untyped_storage()._cdata


def saved_storages(run, exclude: set[int]) -> dict[int, int]:
    """Call ``run()`` under saved-tensor hooks; ``{storage: bytes}`` of what autograd saved,
    leaving out the storages in ``exclude``. Works on real and on meta tensors alike."""
    seen: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # keeps storages alive so their ids stay unique

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in exclude:
            seen[key] = t.untyped_storage().nbytes()
            keep.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return seen


def training_memory(
    model: nn.Module, x_shape: tuple[int, ...], dtype: torch.dtype
) -> TrainingMemory:
    """Bytes a training step holds for a batch of ``x_shape`` with SGD with momentum.

    A model that cannot run a training step on one sample (batch norm over a 1x1 map needs more
    than one value per channel) gets the autograd term extrapolated from batches of 2 and 3: it is
    affine in the batch size (per-sample activations plus per-channel statistics).
    """
    state, _ = meta_state(model, dtype)
    exclude = {storage_key(t) for t in state.values()}
    extrapolated = False
    try:
        saved = _saved_bytes(model, state, x_shape, dtype, exclude)
    except ValueError as err:
        if x_shape[0] != 1 or "more than 1 value per channel" not in str(err):
            raise
        two = _saved_bytes(model, state, (2, *x_shape[1:]), dtype, exclude)
        three = _saved_bytes(model, state, (3, *x_shape[1:]), dtype, exclude)
        saved, extrapolated = max(2 * two - three, 0), True
    weight = sum(t.numel() * t.element_size() for t in state.values())
    trainable = sum(t.numel() * t.element_size() for t in state.values() if t.requires_grad)
    return TrainingMemory(
        saved_bytes=saved,
        weight_bytes=weight,
        grad_bytes=trainable,
        optimizer_bytes=trainable,
        extrapolated=extrapolated,
    )


def _saved_bytes(model, state, x_shape, dtype, exclude) -> int:
    x = torch.empty(x_shape, dtype=dtype, device="meta")
    # a model that draws in training mode (FractalNet's dropped joins) saves what its draw keeps:
    # a fixed seed, on a forked generator, gives the same figure on every call
    with temporarily_training(model, True), torch.enable_grad(), torch.random.fork_rng([]):
        torch.manual_seed(0)
        saved = saved_storages(lambda: functional_call(model, state, (x,)), exclude)
    return sum(saved.values())
