"""cnnzoo: the classic convolutional network architectures, built exactly and explained.

``import cnnzoo`` is instant: torch and the zoo load on first use of a name that needs them
(PEP 562), so ``cnnzoo.calc`` and ``cnnzoo.notation`` stay pure Python. Every public submodule
(``cnnzoo.train``, ``cnnzoo.runs``, ``cnnzoo.data``...) is reachable after that one import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import CheckpointError, CnnzooError, DataError, InputTooSmallError, UnknownModelError

__version__ = "0.1.0"

# public name -> the module that defines it; imported on first access
_LAZY = {
    "analyze": "analysis",
    "load_checkpoint": "checkpoint",
    "model_from_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "optimize_for_inference": "inference",
    "profile": "analysis.profile",
    "LoadResult": "pretrained",
    "load_pretrained": "pretrained",
    "explore": "explorer",
    "create_model": "registry",
    "get_model_info": "registry",
    "is_model": "registry",
    "list_pretrained": "registry",
    "list_models": "registry",
    "register_model": "registry",
    "extract_features": "transfer",
}
# submodules reachable as attributes after a plain ``import cnnzoo`` (``cnnzoo.train.Run``), as
# ``timm.data`` is; each is imported on first access
_SUBMODULES = {
    "analysis", "calc", "checkpoint", "compare", "data", "explorer", "export", "hub",
    "inference", "models", "neighbors", "notation", "pretrained", "registry", "runs", "threads",
    "train", "transfer", "viz",
}  # fmt: skip

__all__ = [
    "CheckpointError",
    "CnnzooError",
    "DataError",
    "InputTooSmallError",
    "LoadResult",
    "UnknownModelError",
    "analyze",
    "create_model",
    "explore",
    "extract_features",
    "get_model_info",
    "is_model",
    "list_pretrained",
    "list_models",
    "load_pretrained",
    "load_checkpoint",
    "model_from_checkpoint",
    "optimize_for_inference",
    "profile",
    "register_model",
    "save_checkpoint",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'cnnzoo' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from . import (  # noqa: F401
        analysis,
        calc,
        checkpoint,
        compare,
        data,
        explorer,
        export,
        hub,
        inference,
        models,
        neighbors,
        notation,
        pretrained,
        registry,
        runs,
        threads,
        train,
        transfer,
        viz,
    )
    from .analysis import analyze  # noqa: F401
    from .analysis.profile import profile  # noqa: F401
    from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: F401
    from .explorer import explore  # noqa: F401
    from .inference import optimize_for_inference  # noqa: F401
    from .pretrained import LoadResult, load_pretrained  # noqa: F401
    from .registry import (  # noqa: F401
        create_model,
        get_model_info,
        is_model,
        list_models,
        list_pretrained,
        register_model,
    )
    from .transfer import extract_features  # noqa: F401
