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

import math
import os
import pickle
import pickletools
import secrets
import stat
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, CnnzooError, UnknownModelError
from .paths import RUN_FILES, write_error
from .registry import create_model

FORMAT = "cnnzoo.checkpoint"
VERSION = 1


# --- writing -----------------------------------------------------------------------------------


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A process killed at any moment leaves either the previous file or the new one, never a torn
    one. On any failure (disk full, read-only disk, a path that cannot be a file) the temporary file
    is removed, the previous file is left as it was, and the error is a one-line ``CnnzooError``
    ("no space left on the device holding DIR (N MB needed, M MB free)"). The file gets the
    permissions of any newly created file (0666 less the umask), like ``open(path, "wb")``.
    """
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        new = write_error(err, path, _payload_bytes(obj))
        if new is err:
            raise
        raise new from err
    if path.is_dir():
        raise CnnzooError(f"cannot write {path}: it is a directory")
    _remove_stale_temporaries(path)
    tmp = None
    try:
        tmp, fd = _create_temporary(path)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, RuntimeError) as err:
        # torch.save's zip writer turns a failed write (a full disk) into a RuntimeError of its
        # own while closing the archive; the OSError it met is in the exception's context.
        cause = _os_error_in_chain(err)
        if cause is None:
            raise
        _discard(tmp)  # first, so that the free space the message reports is what is free
        tmp = None
        new = write_error(cause, path, _payload_bytes(obj))
        if new is cause:  # an errno-less OSError keeps its traceback
            raise
        raise new from err
    finally:
        _discard(tmp)  # any failure, KeyboardInterrupt included: no temporary file stays


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def _os_error_in_chain(err: BaseException) -> OSError | None:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _create_temporary(path: Path) -> tuple[str, int]:
    """A new file ``.NAME.PID.RANDOM.tmp`` beside ``path``, opened for writing with mode 0666
    (the umask applies, as for any file a program creates; mkstemp's 0600 would not match)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary files of earlier writes of ``path`` whose process no longer runs (a
    kill -9 during a write cannot clean up after itself; the next write of the same file does)."""
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return
    for tmp in candidates:
        pid = tmp.name[len(path.name) + 2 :].split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # that process is gone: its write can never finish
            tmp.unlink(missing_ok=True)
        except OSError:  # alive but someone else's: leave it
            pass


def _payload_bytes(obj: Any) -> int:
    """Roughly how many bytes ``torch.save(obj)`` writes: its tensors' storages, each once."""
    seen: dict[int, int] = {}
    stack = [obj]
    while stack:
        o = stack.pop()
        if torch.is_tensor(o):
            try:
                s = o.untyped_storage()
                seen[s.data_ptr() or id(s)] = s.nbytes()
            except (RuntimeError, NotImplementedError):
                seen[id(o)] = o.numel() * o.element_size()
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
    return sum(seen.values()) + 4096


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


# Files only a training run writes: their presence makes a folder a run directory.
# Checkpoint entries that only training writes (a converted or bare weight file has none).
TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "rng", "epoch", "config", "metrics")


def run_files(folder: str | os.PathLike) -> list[str]:
    """The run files (``RUN_FILES``) in ``folder``: empty unless it is a training run's folder."""
    return [name for name in RUN_FILES if (Path(folder) / name).is_file()]


def check_weights_target(path: str | os.PathLike, force: bool = False) -> None:
    """Refuse to write a weight file where it would destroy something, unless ``force``.

    Refused: a directory; any path in a training run's directory (``run_files``); an existing
    file that is not a bare weight file (a training checkpoint, with optimizer state and
    epochs, or a file that holds no weights at all). An existing bare weight file (a state_dict,
    or a checkpoint written by ``cnnzoo convert``) may be replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory; give the file to write, e.g. {path}/model.pt"
        )
    if force:
        return
    found = run_files(path.parent)
    if found:
        raise CheckpointError(
            f"{path.parent} is a training run's directory (it holds {', '.join(found)}); write "
            f"the weights elsewhere, or pass --force (force=True) to write into it"
        )
    if not path.exists():
        return
    what = _not_bare_weights(path)
    if what:
        raise CheckpointError(
            f"{path} exists and is {what}: overwriting it would lose it; choose another output "
            f"file, or pass --force (force=True) to replace it"
        )


def _not_bare_weights(path: Path) -> str | None:
    """What an existing file is, when it is not a bare weight file (``None`` when it is)."""
    if not path.is_file():
        return "not a regular file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # whatever it is, it is not weights this command wrote
        return "not a weight file cnnzoo can read"
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        kept = [k for k in TRAINING_KEYS if k in obj]
        if kept:
            epoch = f", epoch {obj['epoch']}" if isinstance(obj.get("epoch"), int) else ""
            return f"a training checkpoint{epoch} (with its {', '.join(kept[:3])})"
        return None
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return None
    return "not a bare weight file"


# --- reading -----------------------------------------------------------------------------------


def printable(text: object, limit: int = 160) -> str:
    """``text`` on one line without control characters (no newlines, no terminal escapes),
    shortened to ``limit`` characters: safe to print whatever a file put in it."""
    out = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))
    return out if len(out) <= limit else out[: limit - 3] + "..."


def first_line(err: BaseException) -> str:
    """The first sentence of an exception's message (its type name when the message is empty)."""
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    return printable(lines[0].strip().split(". ")[0])


def check_input_file(path: Path, what: str) -> None:
    """Refuse, in one line, a ``path`` that cannot be read as a file: missing, a directory, a
    pipe or device (reading it could block forever), empty, or without read permission."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} does not exist (or is not a file)") from None
    except OSError as err:
        raise CheckpointError(f"cannot read {what} {path}: {err.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(
            f"{what} {path} is a directory, not a file (a run directory holds best.pt and last.pt)"
        )
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{what} {path} is not a regular file (a pipe or a device?)")
    if st.st_size == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes): an interrupted write or copy?")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"cannot read {what} {path}: permission denied")


def code_references(path: Path) -> list[str]:
    """The Python callables a ``torch.save``/pickle file would import and call when loaded
    without ``weights_only`` and that ``torch.load(weights_only=True)`` refuses (``posix.system``
    ...), found by reading its opcodes, never by running them. Empty for a file without any, or
    one too damaged to read."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip archive (a legacy or bare pickle), or a damaged one
        pass
    try:
        from torch._weights_only_unpickler import _get_allowed_globals, _get_user_allowed_globals

        allowed = set(_get_allowed_globals()) | set(_get_user_allowed_globals())
    except ImportError:  # torch without it: every global outside torch counts
        allowed = set()
    found: set[str] = set()
    try:
        with open(path, "rb") as f:
            # A legacy torch.save file is several pickles in a row (magic number, protocol, system
            # information, the object, its storage keys) followed by raw bytes.
            for _ in range(5):
                strings: list[str] = []
                for op, arg, _ in pickletools.genops(f):
                    if op.name in ("GLOBAL", "INST"):
                        found.add(".".join(str(arg).split(" ", 1)))
                    elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                        found.add(".".join(strings))
                    if isinstance(arg, str):
                        strings = [*strings[-1:], arg]
    except Exception:  # raw bytes or damage: whatever was found before them counts
        pass
    if not allowed:
        return sorted(n for n in found if n.split(".")[0] not in ("torch", "collections"))
    return sorted(n for n in found if n not in allowed)


def unsafe_file_error(path: Path, names: list[str], what: str) -> CheckpointError:
    """The refusal of a file that would run code when loaded (see ``code_references``)."""
    shown = ", ".join(printable(n, 60) for n in names[:3]) + (" ..." if len(names) > 3 else "")
    return CheckpointError(
        f"{path} was not loaded: it is not a plain {what}, and loading it would run code from the "
        f"file (it calls {shown}); cnnzoo loads only tensors and plain data. If you trust its "
        f"source, re-save just the weights: torch.save(model.state_dict(), ...) or safetensors"
    )


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint; anything else raises ``CheckpointError`` saying why.

    The file is read with ``torch.load(weights_only=True)``, so nothing in it runs; a file that
    would run code is refused as such. The contents are checked (``validate_checkpoint``) so
    that a damaged or hand-edited checkpoint fails here, in one line, rather than deep inside
    the model.
    """
    path = Path(path)
    if not path.exists():
        from .registry import model_name_hint

        hint = model_name_hint(str(path))  # a torchvision or timm user's model name
        if hint:
            raise CheckpointError(hint)
    check_input_file(path, "checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols and the like
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # what weights_only raises for a forbidden global
        names = code_references(path)
        if names:
            raise unsafe_file_error(path, names, "checkpoint") from None
        raise _unreadable(path, err) from None
    except Exception as err:  # a torn file fails in many ways (zip, EOF, safetensors, ...)
        raise _unreadable(path, err) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = "a state_dict or other dict" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a cnnzoo checkpoint (it holds {what}); for a torchvision/timm weight "
            f"file use `cnnzoo convert` or cnnzoo.load_pretrained"
        )
    validate_checkpoint(ckpt, path)
    return ckpt


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    if isinstance(err, OSError) and err.errno is not None:
        return CheckpointError(f"cannot read checkpoint {path}: {err.strerror}")
    size = path.stat().st_size
    return CheckpointError(
        f"{path} is not a readable checkpoint ({size:,} bytes; truncated, corrupt, or not "
        f"written by torch.save): {first_line(err)}"
    )


def validate_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> None:
    """Check what a cnnzoo checkpoint holds, before anything is built from it.

    Raises ``CheckpointError`` naming the first entry that no ``save_checkpoint`` writes: a model
    name that is not a string, ``model_args`` that are not keyword arguments (or a class or
    channel count below zero), a ``state_dict`` entry that is not a tensor, class names that are
    not a list of strings, a preprocessing description without a valid input size.
    """

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path} is a damaged cnnzoo checkpoint: {what}")

    for key in ("model", "model_args", "state_dict"):
        if key not in ckpt:
            raise bad(f"no {key!r} entry")
    if not isinstance(ckpt["model"], str) or not ckpt["model"]:
        raise bad(f"'model' should be a model name, got {printable(repr(ckpt['model']), 60)}")
    args = ckpt["model_args"]
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise bad(f"'model_args' should be a dict of keyword arguments, got {type(args).__name__}")
    for key, low in (("num_classes", 0), ("in_chans", 1)):
        value = args.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad(f"model_args {key} should be an integer, got {printable(repr(value), 60)}")
        if value is not None and value < low:
            raise bad(f"model_args {key} should be {low} or more, got {value}")
    state = ckpt["state_dict"]
    if not isinstance(state, dict):
        raise bad(f"'state_dict' should be a dict of tensors, got {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise bad(
                f"state_dict entry {printable(repr(key), 60)} is a {type(value).__name__}, "
                f"not a tensor"
            )
    classes = ckpt.get("classes")
    if classes is not None and (
        not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes)
    ):
        raise bad(f"'classes' should be a list of class names, got {type(classes).__name__}")
    nc = args.get("num_classes")
    if classes is not None and nc not in (None, 0) and len(classes) != nc:
        raise bad(f"{len(classes)} class names for a model of num_classes={nc}")
    pre = ckpt.get("preprocess")
    if pre:
        size = pre.get("input_size") if isinstance(pre, dict) else None
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 3
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
        ):
            raise bad(f"'preprocess' has no valid input_size [C, H, W] (got {printable(size, 60)})")
        for key in ("mean", "std"):
            stats = pre.get(key)
            if stats is not None and (
                not isinstance(stats, (list, tuple))
                or len(stats) != size[0]
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in stats)
                or (key == "std" and not all(v > 0 for v in stats))
            ):
                raise bad(f"preprocess {key} should be {size[0]} finite numbers, got {stats!r}")


def model_from_checkpoint(
    ckpt: dict[str, Any] | str | os.PathLike, expect_model: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model, checkpoint).

    ``expect_model`` refuses a checkpoint of another architecture with a clear message. A
    checkpoint whose arguments do not build its model, or whose class names do not match the
    model's outputs, is a ``CheckpointError``.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    else:
        validate_checkpoint(ckpt)
    name = ckpt["model"]
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"checkpoint is for model {name!r}, not {expect_model!r}")
    try:
        model = create_model(name, **ckpt["model_args"])
    except UnknownModelError as err:
        raise CheckpointError(
            f"checkpoint names a model this cnnzoo does not have: {err}"
        ) from None
    except (TypeError, ValueError) as err:  # an argument the builder does not take, or refuses
        args = printable(ckpt["model_args"], 100)
        raise CheckpointError(
            f"checkpoint's model_args {args} do not build {name!r}: {first_line(err)}"
        ) from err
    load_state_dict_checked(model, ckpt["state_dict"], source=f"checkpoint of {name!r}")
    classes = ckpt.get("classes")
    outputs = getattr(model, "num_classes", None)
    if classes and isinstance(outputs, int) and outputs > 0 and len(classes) != outputs:
        raise CheckpointError(
            f"checkpoint of {name!r} names {len(classes)} classes but its model has {outputs} "
            f"outputs: a damaged checkpoint"
        )
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
