"""Weight files from torchvision and timm: load them into cnnzoo models, or convert them.

``load_pretrained(model, path)`` reads a local ``.pth``/``.pt``/``.bin`` file (``torch.save``, read
back with ``weights_only=True``) or a ``.safetensors`` file, so loading never executes code from the
file. It accepts a bare state_dict, one wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``,
DDP's ``module.`` prefixes, and cnnzoo checkpoints. Key names are taken as they are (cnnzoo's models
use torchvision's or timm's names) unless the model defines ``adapt_state_dict(state_dict)``, which
maps a peer's names onto its own. A classifier for another class count is dropped, with a warning,
so that fine-tuning on a new class count just works; any other mismatch is a ``CheckpointError``
naming the first key that does not fit and both shapes.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    FORMAT,
    check_input_file,
    check_weights_target,
    code_references,
    load_state_dict_checked,
    save_checkpoint,
    unsafe_file_error,
)
from .errors import CheckpointError, CnnzooError
from .registry import create_model

# Where training scripts keep the weights inside a bigger dict (timm, torchvision references, ...).
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")
# Prefixes added by DistributedDataParallel / DataParallel and by torch.compile.
_PREFIXES = ("module.", "_orig_mod.")

SOURCES = {
    "native": "keys as they are (torchvision/timm names, which cnnzoo's models share)",
    "mapped": "a peer's keys (timm's, say) mapped by the model's adapt_state_dict",
    "cnnzoo": "a cnnzoo checkpoint",
}


@dataclass
class LoadResult:
    """What ``load_pretrained`` did."""

    path: str  # the file read
    source: str  # "native", "mapped" or "cnnzoo": how the keys were matched (see SOURCES)
    file_format: str  # "safetensors" or "torch.save"
    loaded: int  # number of tensors copied from the file into the model
    dropped: list[str] = field(default_factory=list)  # classifier keys left out (class mismatch)
    file_num_classes: int | None = None  # the file's classifier outputs, when it has one
    message: str = ""  # one line for people: what was loaded, and what was dropped and why
    model: nn.Module | None = field(default=None, repr=False, compare=False)  # the model loaded

    def __str__(self) -> str:
        return self.message


# --- reading a weight file ---------------------------------------------------------------------


def _is_safetensors(path: Path) -> bool:
    """Sniff the format: 8 bytes of little-endian header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n < path.stat().st_size


def _unreadable(path: Path, why: str) -> CheckpointError:
    size = path.stat().st_size
    return CheckpointError(f"{path} is not a readable weight file ({size:,} bytes): {why}")


def read_weight_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str, dict | None]:
    """The tensors of a weight file, unwrapped: ``(state_dict, file_format, cnnzoo_checkpoint)``.

    ``cnnzoo_checkpoint`` is the whole checkpoint dict when the file is one, else ``None``.
    Raises ``CheckpointError`` with one line for a missing, truncated, corrupt or unsafe file.
    """
    path = Path(path)
    check_input_file(path, "weight file")
    if _is_safetensors(path) or path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as err:  # a lying header: SafetensorError, OSError, MemoryError ...
            raise _unreadable(path, f"safetensors says {_first_line(err)}") from None
        file_format = "safetensors"
    else:
        try:
            # argparse.Namespace is how timm's training checkpoints store their arguments; it is
            # plain data, so it may be rebuilt without running anything from the file.
            with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on pickle protocols
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:  # what weights_only raises for a forbidden global
            with torch.serialization.safe_globals([argparse.Namespace]):
                names = code_references(path)
            if names:
                raise unsafe_file_error(path, names, "weight file") from None
            raise _unreadable(path, f"not a torch.save file ({_first_line(err)})") from None
        except Exception as err:  # a corrupt file can raise almost anything (KeyError, ...)
            raise _unreadable(
                path, f"truncated, corrupt, or not written by torch.save ({_first_line(err)})"
            ) from None
        file_format = "torch.save"
    state_dict, ckpt = _unwrap(obj, path)
    return _strip_prefixes(state_dict), file_format, ckpt


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if not text:
        return type(err).__name__
    first = text.splitlines()[0].split(". ")[0]  # PyTorch's messages go on for several sentences
    return f"{type(err).__name__}: {first[:160]}"


def _tensors_only(d: dict) -> bool:
    return bool(d) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in d.items())


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict of tensors")
    if obj.get("format") == FORMAT:
        if not isinstance(obj.get("state_dict"), dict):
            raise CheckpointError(f"{path} is a damaged cnnzoo checkpoint: no 'state_dict' entry")
        return dict(obj["state_dict"]), obj
    if _tensors_only(obj):
        return dict(obj), None
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, dict) and _tensors_only(inner):
            return dict(inner), None
    keys = ", ".join(repr(k) for k in list(obj)[:6])
    raise CheckpointError(
        f"{path} holds a dict without a state_dict of tensors (its keys: {keys}); expected the "
        f"weights themselves or a dict with one of {', '.join(_WRAPPER_KEYS)}"
    )


def _strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


# --- matching a state_dict to a model ----------------------------------------------------------


def classifier_prefix(model: nn.Module) -> str | None:
    """The module path of ``model.get_classifier()`` (``"fc"``, ``"classifier.6"``), if any."""
    get = getattr(model, "get_classifier", None)
    if get is None:
        return None
    try:
        head = get()
    except NotImplementedError:
        return None
    return next((name for name, m in model.named_modules() if m is head and name), None)


def _file_num_classes(state_dict: dict[str, torch.Tensor], prefix: str | None) -> int | None:
    if prefix is None:
        return None
    weights = [k for k in state_dict if k.startswith(prefix + ".") and k.endswith("weight")]
    return int(state_dict[weights[-1]].shape[0]) if weights else None


def _match_keys(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[dict, str]:
    """Apply the model's ``adapt_state_dict`` when the keys are not already the model's own."""
    own = set(model.state_dict())
    adapt = getattr(model, "adapt_state_dict", None)
    if adapt is None or set(state_dict) <= own:
        return state_dict, "native"
    adapted = adapt(dict(state_dict))
    return adapted, "native" if set(adapted) == set(state_dict) else "mapped"


def _same_model_nc(model: nn.Module, prefix: str | None) -> int | None:
    nc = getattr(model, "num_classes", None)
    if nc is None and prefix is not None:
        w = model.state_dict().get(prefix + ".weight")
        nc = int(w.shape[0]) if w is not None else None
    return nc


def load_pretrained(
    model: nn.Module, path: str | os.PathLike, *, num_classes_mismatch: str = "drop"
) -> LoadResult:
    """Load a local torchvision/timm weight file (or a cnnzoo checkpoint) into ``model``.

    The outputs then equal those of the peer model the file was saved from. When the file's
    classifier has another class count than ``model``, ``num_classes_mismatch="drop"`` (the
    default) keeps the model's freshly initialised head and warns; ``"error"`` raises instead.
    Returns a ``LoadResult`` saying which kind of file it was and what was dropped.
    """
    if num_classes_mismatch not in ("drop", "error"):
        raise ValueError(
            f"num_classes_mismatch must be 'drop' or 'error', got {num_classes_mismatch!r}"
        )
    path = Path(path)
    state_dict, file_format, ckpt = read_weight_file(path)
    if ckpt is not None:
        source = "cnnzoo"
    else:
        state_dict, source = _match_keys(model, state_dict)
    own = model.state_dict()
    prefix = classifier_prefix(model)
    file_nc = _file_num_classes(state_dict, prefix)
    model_nc = _same_model_nc(model, prefix)
    dropped = _head_mismatch(state_dict, own, prefix, file_nc, model_nc)
    message = ""
    if dropped:
        what = (
            f"has {file_nc} classes in the file and {model_nc} in the model"
            if file_nc is not None
            else "is not in the file"
        )
        aux = [k for k in dropped if not k.startswith(prefix + ".")]
        also = f" (nor {len(aux)} tensors of auxiliary classifiers)" if aux else ""
        message = (
            f"classifier {prefix!r} {what}: its weights were not loaded{also}, the model keeps "
            f"its new untrained head (fine-tune it)"
        )
        if num_classes_mismatch == "error":
            raise CheckpointError(f"{path}: classifier {prefix!r} {what}")
    from_file = len([k for k in state_dict if k not in dropped])
    if dropped:
        state_dict = {k: v for k, v in state_dict.items() if k not in dropped}
        for k in dropped:
            if k in own:
                state_dict[k] = own[k]
    for k, v in own.items():  # older files lack BN's counter, which no computation uses
        if k.endswith("num_batches_tracked") and k not in state_dict:
            state_dict[k] = v
    hint = ""
    if ckpt is not None:
        hint = f" (a cnnzoo checkpoint of {ckpt.get('model')!r})"
    elif getattr(model, "adapt_state_dict", None) is None:
        hint = " (keys taken as they are; the model defines no adapt_state_dict)"
    load_state_dict_checked(model, state_dict, source=f"{path.name}{hint}")
    if message:  # warn only once the rest of the file has fitted the model
        warnings.warn(f"{path.name}: {message}", UserWarning, stacklevel=2)
    kind = f"a cnnzoo checkpoint of {ckpt['model']!r}" if ckpt is not None else SOURCES[source]
    summary = f"loaded {from_file} tensors from {path.name} ({file_format}; {kind})"
    return LoadResult(
        path=str(path),
        source=source,
        file_format=file_format,
        loaded=from_file,
        dropped=sorted(dropped),
        file_num_classes=file_nc,
        message=f"{summary}; {message}" if message else summary,
        model=model,
    )


def _head_mismatch(
    state_dict: dict[str, torch.Tensor],
    own: dict[str, torch.Tensor],
    prefix: str | None,
    file_nc: int | None,
    model_nc: int | None,
) -> list[str]:
    """Keys to drop because the file's classifier (or auxiliary classifiers) has other classes."""
    if prefix is None:
        return []
    head_file = [k for k in state_dict if k.startswith(prefix + ".")]
    head_own = [k for k in own if k.startswith(prefix + ".")]
    differs = set(head_file) != set(head_own) or any(
        state_dict[k].shape != own[k].shape for k in head_file
    )
    if not differs:
        return []
    dropped = set(head_file) | set(head_own)
    if file_nc is not None and model_nc is not None and file_nc != model_nc:
        # Auxiliary classifiers (GoogLeNet, Inception v3) have the same class count as the main
        # one: a tensor that differs only in its first dimension, file_nc vs model_nc, is one.
        for k, v in state_dict.items():
            o = own.get(k)
            if (
                o is not None
                and v.dim() == o.dim() > 0
                and v.shape[0] == file_nc
                and o.shape[0] == model_nc
                and v.shape[1:] == o.shape[1:]
            ):
                dropped.add(k)
    return sorted(dropped)


# --- converting a peer's file into a cnnzoo checkpoint -----------------------------------------


def convert_weights(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model_name: str,
    num_classes: int | None = None,
    *,
    force: bool = False,
    **model_args: Any,
) -> LoadResult:
    """Turn a torchvision/timm weight file into a cnnzoo checkpoint that rebuilds itself.

    The class count is taken from the file's classifier unless ``num_classes`` is given (then a
    classifier of another size is dropped, as in ``load_pretrained``). ``dst`` never replaces a
    training checkpoint or other file that is not a bare weight file, nor goes into a training
    run's directory, unless ``force`` (see ``checkpoint.check_weights_target``).
    """
    check_weights_target(dst, force=force)
    if num_classes is None:
        probe = _build(model_name, device="meta", **model_args)
        state_dict, _, ckpt = read_weight_file(src)
        if ckpt is None:
            state_dict, _ = _match_keys(probe, state_dict)
        num_classes = _file_num_classes(state_dict, classifier_prefix(probe))
        if num_classes is None:
            raise CheckpointError(
                f"{src} has no classifier weights for {model_name!r} to take the class count "
                f"from; give it (--num-classes N)"
            )
    model = _build(model_name, num_classes=num_classes, **model_args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the message is in the result, printed by the caller
        result = load_pretrained(model, src)
    save_checkpoint(
        dst,
        model_name,
        {"num_classes": num_classes, **model_args},
        model.state_dict(),
        converted_from=str(Path(src).name),
        converted_source=result.source,
    )
    return result


def _build(model_name: str, **kwargs: Any) -> nn.Module:
    """``create_model``, with a wrong keyword argument reported as a user error."""
    try:
        return create_model(model_name, **kwargs)
    except TypeError as err:
        raise CnnzooError(f"cannot build {model_name!r} with {kwargs}: {err}") from None
