"""Checkpoints that rebuild their model by themselves, written atomically, loaded safely.

A checkpoint is one file written with ``torch.save`` and read with ``torch.load(weights_only=True)``
(tensors, numbers, strings, lists and dicts only: loading never runs code from the file). Keys:

- ``format`` (``"cnnzoo.checkpoint"``) and ``version``: how a file says it is a checkpoint.
- ``model``: registered name; ``model_args``: keyword arguments of ``create_model``.
- ``state_dict``: the model's weights.
- optional: ``classes`` (class names), ``preprocess`` (``{"input_size": [C, H, W], "mean": [...],
  "std": [...]}``), ``epoch``, ``metrics``, ``optimizer``, ``scheduler``, ``scaler``, ``rng``,
  ``config`` (the training configuration as a dict), and anything else JSON-like.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, UnknownModelError
from .registry import create_model

FORMAT = "cnnzoo.checkpoint"
VERSION = 1


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A process killed at any moment leaves either the previous file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(
    path: str | os.PathLike,
    model_name: str,
    model_args: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    **extra: Any,
) -> None:
    """Write a checkpoint atomically; ``extra`` holds the optional keys listed in the module doc."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name,
        "model_args": dict(model_args),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        **extra,
    }
    atomic_save(payload, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint; anything else raises ``CheckpointError`` saying why."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        OSError,
        KeyError,
        IndexError,
        ValueError,
        TypeError,
    ) as err:  # a torn file fails in many ways
        size = path.stat().st_size
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({size:,} bytes; truncated, corrupt, or not "
            f"written by torch.save): {str(err).splitlines()[0][:200]}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = "a state_dict or other dict" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a cnnzoo checkpoint (it holds {what}); for a torchvision/timm weight "
            f"file use `cnnzoo convert` or cnnzoo.load_pretrained"
        )
    for key in ("model", "model_args", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path} is a damaged cnnzoo checkpoint: no {key!r} entry")
    return ckpt


def model_from_checkpoint(
    ckpt: dict[str, Any] | str | os.PathLike, expect_model: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model, checkpoint).

    ``expect_model`` refuses a checkpoint of another architecture with a clear message.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    name = ckpt["model"]
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"checkpoint is for model {name!r}, not {expect_model!r}")
    try:
        model = create_model(name, **ckpt["model_args"])
    except UnknownModelError as err:
        raise CheckpointError(
            f"checkpoint names a model this cnnzoo does not have: {err}"
        ) from None
    load_state_dict_checked(model, ckpt["state_dict"], source=f"checkpoint of {name!r}")
    return model, ckpt


def load_state_dict_checked(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "state_dict"
) -> None:
    """``load_state_dict(strict=True)`` whose error names the first mismatching key and shapes."""
    own = model.state_dict()
    for key, value in state_dict.items():
        if key not in own:
            raise CheckpointError(
                f"{source} does not fit {type(model).__name__}: unexpected key {key!r}"
            )
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"{source} does not fit {type(model).__name__}: {key!r} has shape "
                f"{tuple(value.shape)} in the file but {tuple(own[key].shape)} in the model"
            )
    missing = [k for k in own if k not in state_dict]
    if missing:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: missing key {missing[0]!r}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    model.load_state_dict(state_dict, strict=True)
