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

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import CnnzooError
from .report import _bytes
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


class _OneValuePerChannel(CnnzooError):
    """A batch norm in training mode would see one value per channel (batch 1 on a 1x1 map),
    where its batch statistics are undefined; raised before the layer runs."""


@contextmanager
def _refuse_one_value_per_channel(model: nn.Module, active: bool) -> Iterator[None]:
    """While active, every batch norm of ``model`` that would normalise with batch statistics
    checks its input first and raises ``_OneValuePerChannel`` where torch would refuse it
    (batch times spatial size 1, the test of ``F.batch_norm``)."""

    def check(module: _BatchNorm, args: tuple) -> None:
        x = args[0]
        batch_stats = module.training or module.running_mean is None
        if batch_stats and math.prod((x.shape[0], *x.shape[2:])) == 1:
            raise _OneValuePerChannel(f"{type(module).__name__} sees one value per channel")

    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)] if active else []
    handles = [m.register_forward_pre_hook(check) for m in norms]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


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
        with _refuse_one_value_per_channel(model, active=x_shape[0] == 1):
            saved = _saved_bytes(model, state, x_shape, dtype, exclude)
    except _OneValuePerChannel:
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


def device_memory(device: torch.device) -> int | None:
    """The device's memory in bytes: a GPU's total, else the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return None


# A generous guess of a training step's bytes per byte of input (ResNet-50 at 224x224 keeps about
# 140 per image): above a quarter of the memory, the step is measured before it is run
_GUESS_PER_INPUT_BYTE = 200


def check_training_fits(
    model: nn.Module,
    x_shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    name: str | None = None,
) -> None:
    """Refuse, before anything is allocated, a training batch whose step needs more than the
    device's memory: what autograd saves, the weights and their gradients, which the real peak
    (with the optimiser's state and temporaries) only exceeds. Run out of memory instead, a CPU
    process is killed by the system without a word. The measurement (``training_memory``) costs
    about a second on its first call, so it is made only when a generous guess from the input's
    size comes near the memory."""
    have = device_memory(device)
    if have is None or math.prod(x_shape) * dtype.itemsize * _GUESS_PER_INPUT_BYTE < have / 4:
        return
    mem = training_memory(model, x_shape, dtype)
    need = mem.total - mem.optimizer_bytes  # the optimiser's state depends on the optimiser
    if need > have:
        raise CnnzooError(
            f"a training step of {name or type(model).__name__} on a batch of {x_shape[0]:,} at "
            f"{'x'.join(map(str, x_shape[2:]))}x{x_shape[1]} needs at least {_bytes(need)}, "
            f"more than the {_bytes(have)} of {device.type} memory; use a smaller --batch-size"
        )
