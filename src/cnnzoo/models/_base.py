"""The interface every cnnzoo model shares (as timm's models do).

A model sets ``num_classes``, ``in_chans`` and ``num_features`` and implements
``forward_features`` (the last feature map, before pooling), ``forward_head`` and
``reset_classifier``; ``forward`` is their composition. An input too small for the network, or
with the wrong number of channels, raises ``InputTooSmallError`` / ``CnnzooError`` naming the layer
and the fix instead of PyTorch's bare shape error.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..errors import CnnzooError, InputTooSmallError

# Fragments of PyTorch's messages for a layer whose output would be empty.
_SIZE_ERRORS = (
    "Kernel size can't be greater than actual input size",
    "Output size is too small",
    "non-positive",
    "output size is too small",
    "Calculated output size",
)


class ZooModel(nn.Module):
    """Base class of the zoo: ``forward(x) = forward_head(forward_features(x))``."""

    num_classes: int  # outputs of the classifier; 0 when the head returns pre-logits features
    in_chans: int  # channels of the input image
    num_features: int  # width of the pre-logits features (what forward_head(pre_logits=True) gives)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        try:
            return self.forward_head(self.forward_features(x))
        except RuntimeError as err:
            raise_if_too_small(self, x, err)
            raise


def check_input(model: nn.Module, x: torch.Tensor) -> None:
    """Refuse an image batch whose channel count is not the model's ``in_chans``."""
    in_chans = getattr(model, "in_chans", None)
    if in_chans is not None and x.dim() == 4 and x.shape[1] != in_chans:
        raise CnnzooError(
            f"{type(model).__name__} expects {in_chans}-channel input, got {x.shape[1]} channels "
            f"(shape {tuple(x.shape)}); build it with in_chans={x.shape[1]} or convert the images"
        )


_diagnosing = False  # set while the diagnosis itself runs the model, so it does not recurse


def raise_if_too_small(model: nn.Module, x: torch.Tensor, err: RuntimeError) -> None:
    """If ``err`` is PyTorch's complaint about an empty output, raise one that names the layer."""
    global _diagnosing
    if _diagnosing or x.dim() != 4 or not any(s in str(err) for s in _SIZE_ERRORS):
        return
    _diagnosing = True
    try:
        _raise_too_small(model, x, err)
    finally:
        _diagnosing = False


def _raise_too_small(model: nn.Module, x: torch.Tensor, err: RuntimeError) -> None:
    layer, shape = _failing_layer(model, x)
    size = "x".join(str(s) for s in x.shape[1:])
    where = f"layer {layer} gets a {shape} input and its output would be empty"
    smallest = _smallest_square_input(model, x)
    fix = f"; the smallest square input it accepts is {smallest}x{smallest}" if smallest else ""
    raise InputTooSmallError(
        f"input {size} is too small for {type(model).__name__}: {where}{fix}"
    ) from err


def _failing_layer(model: nn.Module, x: torch.Tensor) -> tuple[str, str]:
    """Run ``x`` on the meta device, noting the last leaf module entered before the error."""
    entered: list[tuple[str, str]] = []
    handles = []

    def note(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor):
                shape = "x".join(str(s) for s in args[0].shape[1:])
                entered.append((f"'{name}' ({type(_module).__name__})", shape))

        return hook

    for name, module in model.named_modules():
        if not list(module.children()):
            handles.append(module.register_forward_pre_hook(note(name)))
    try:
        _meta_forward(model, x.shape)
    except RuntimeError:
        pass
    finally:
        for h in handles:
            h.remove()
    return entered[-1] if entered else ("?", "?")


def _meta_forward(model: nn.Module, shape: torch.Size) -> None:
    """A forward pass on the meta device that neither allocates nor touches the model's tensors."""
    state = {
        k: torch.empty_like(v, device="meta")
        for k, v in list(model.named_parameters()) + list(model.named_buffers())
    }
    with torch.no_grad():
        functional_call(model, state, (torch.empty(shape, device="meta"),))


def _smallest_square_input(model: nn.Module, x: torch.Tensor, limit: int = 1024) -> int | None:
    """Bisect the smallest square side the model accepts (meta device, so it costs no compute)."""

    def fits(side: int) -> bool:
        try:
            # batch 2: a batch norm in training mode refuses a single value per channel
            _meta_forward(model, (2, x.shape[1], side, side))
        except RuntimeError as err:  # only an empty output means "too small"
            return not any(s in str(err) for s in _SIZE_ERRORS)
        return True

    lo, hi = max(x.shape[-2], x.shape[-1]), limit
    if not fits(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
