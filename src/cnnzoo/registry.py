"""The model registry: ``register_model``, ``create_model``, ``list_models``.

Builders register themselves with a decorator; ``cnnzoo.models`` imports every family module
explicitly, and the look-ups below import ``cnnzoo.models`` on first use, so the registry is
complete whenever it is read (and ``import cnnzoo`` need not load the zoo).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UnknownModelError


@dataclass(frozen=True)
class ModelInfo:
    name: str  # registered name, e.g. "resnet50"
    builder: Callable[..., nn.Module]  # the function that builds it
    input_size: tuple[int, int, int]  # (C, H, W) the architecture was designed for
    family: str  # module the builder lives in, e.g. "resnet"
    paper: str  # first line of the builder's docstring

    @property
    def default_num_classes(self) -> int | None:
        return _default_arg(self.builder, "num_classes")

    @property
    def default_in_chans(self) -> int | None:
        return _default_arg(self.builder, "in_chans")


_MODELS: dict[str, ModelInfo] = {}


def _zoo() -> dict[str, ModelInfo]:
    """The registry, with the zoo's own families imported (once; a no-op afterwards)."""
    from . import models  # noqa: F401  (registers every architecture)

    return _MODELS


def _default_arg(fn: Callable, name: str):
    param = inspect.signature(fn).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def register_model(fn: Callable | None = None, *, input_size: tuple[int, int, int] = (3, 224, 224)):
    """Register a model builder under its function name.

    Use bare (``@register_model``) for 224x224 RGB models, or with the architecture's input size
    (``@register_model(input_size=(1, 32, 32))``). A name registered twice is an error.
    """

    def decorate(builder: Callable) -> Callable:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name].family}")
        doc = inspect.getdoc(builder) or ""
        _MODELS[name] = ModelInfo(
            name=name,
            builder=builder,
            input_size=tuple(input_size),
            family=builder.__module__.rsplit(".", 1)[-1],
            paper=doc.splitlines()[0] if doc else "",
        )
        return builder

    return decorate(fn) if fn is not None else decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell wildcard (``"res*"``, ``"*_bn"``), sorted."""
    return sorted(n for n in _zoo() if fnmatch.fnmatchcase(n, pattern))


def closest_models(name: str, n: int = 5) -> list[str]:
    """The registered names most like ``name``: prefix matches first, then by similarity."""
    prefix = [m for m in sorted(_zoo()) if m.startswith(name) or name.startswith(m)]
    similar = difflib.get_close_matches(name, list(_MODELS), n=n, cutoff=0.5)
    out: list[str] = []
    for m in prefix + similar:
        if m not in out:
            out.append(m)
    return out[:n]


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; an unknown name raises with the closest names."""
    try:
        return _zoo()[name]
    except KeyError:
        close = closest_models(name)
        hint = f"did you mean {', '.join(close)}?" if close else "see `cnnzoo list`."
        raise UnknownModelError(f"unknown model {name!r}; {hint}") from None


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    device: torch.device | str | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered model, as ``timm.create_model`` does.

    ``num_classes`` and ``in_chans`` default to the architecture's own (1000 classes and RGB for
    the ImageNet models, 10 classes of 32x32x1 for LeNet-5, 361 moves of 19x19x48 for AlphaGo);
    ``num_classes=0`` gives a model whose output is the pooled pre-logits features.
    ``device="meta"`` builds it without allocating weights (to count parameters, say).
    """
    info = get_model_info(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if device is None:
        return info.builder(**kwargs)
    with torch.device(device):
        return info.builder(**kwargs)
