"""Paths checked before any work is done: an output that can really be written, an input file
that can be read without blocking."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import CnnzooError

_WHY = {errno.EROFS: "a read-only file system", errno.EACCES: "permission denied"}

# The files a training run keeps in its directory, which no other output may replace.
RUN_FILES = ("last.pt", "best.pt", "interrupted.pt", "metrics.csv")


def as_list(value: object) -> list:
    """``value`` as a list, where a single string or path stands for itself: a Python caller's
    ``compare("alexnet")`` or ``predict_checkpoint(ckpt, "shoe.png")`` would otherwise be read
    one character at a time (``"/"``, then the whole file system)."""
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)  # type: ignore[call-overload]


def check_writable(text: str, kind: str, keep_runs: bool = True) -> None:
    """Raise ``CnnzooError`` unless ``text`` can be written as a ``kind`` ("file" or "dir").

    Its nearest existing folder must be a folder in which a file can really be created: the check
    creates an unnamed temporary file there and nothing else, so it holds for root on a read-only
    disk too. An existing file must be writable and, with ``keep_runs``, not one of a training
    run's files (``RUN_FILES``): a picture or an export written over ``RUN/last.pt`` would lose
    the run.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind is 'file' or 'dir', got {kind!r}")
    path = Path(text)
    if kind == "file" and path.is_dir():
        raise CnnzooError(f"{text} is a directory; give a file name")
    if kind == "file" and keep_runs and path.name in RUN_FILES and path.is_file():
        raise CnnzooError(
            f"{text} is a training run's {path.name}; writing over it would lose the run: give "
            f"another output file"
        )
    if kind == "dir" and path.exists() and not path.is_dir():
        raise CnnzooError(f"{text} is a file, not a directory")
    folder = path if kind == "dir" else path.parent
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise CnnzooError(f"cannot write {text}: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        reason = _WHY.get(err.errno, err.strerror or type(err).__name__)
        raise CnnzooError(f"cannot write {text}: {existing} is not writable ({reason})") from None
    if path.is_file() and not os.access(path, os.W_OK):
        raise CnnzooError(f"cannot write {text}: the file is read-only")


def check_readable(text: str) -> None:
    """Raise ``CnnzooError`` when ``text`` is a directory or not a regular file (a FIFO would
    block its reader until another process wrote to it). Nothing is opened; a missing file is left
    to the command that reads it, which says what the file should have been."""
    path = Path(text)
    if not path.exists():
        return
    if path.is_dir():
        raise CnnzooError(f"{text} is a directory; give a file")
    if not path.is_file():
        raise CnnzooError(f"{text} is not a regular file (a pipe or a device?); give a file")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e6:.3f} MB"


def write_error(err: OSError, path: Path, needed: int | None = None) -> Exception:
    """One line for an ``OSError`` met writing ``path``, naming the file and what to do (a
    ``CnnzooError``), or ``err`` itself when it carries no errno (not the system's word on the
    disk: it keeps its traceback). ``needed`` is the size of what was being written, in bytes."""
    path = Path(path)
    where = path.parent
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            st = os.statvfs(where)
            free = f"{_megabytes(st.f_bavail * st.f_frsize)} free"
        except OSError:
            free = ""
        size = [f"{_megabytes(needed)} needed"] if needed is not None else []
        space = ", ".join([*size, free] if free else size)
        space = f" ({space})" if space else ""
        kept = f"; the previous {path.name} is unchanged" if path.exists() else ""
        return CnnzooError(
            f"no space left on the device holding {where}{space} while writing {path.name}"
            f"{kept}: free some space or write elsewhere"
        )
    if err.errno == errno.EROFS:
        return CnnzooError(f"cannot write {path}: {where} is on a read-only file system")
    if err.errno in (errno.EACCES, errno.EPERM):
        return CnnzooError(f"cannot write {path}: permission denied in {where}")
    if err.errno in (errno.ENOTDIR, errno.EEXIST) and not where.is_dir():
        blocker = next((p for p in (where, *where.parents) if p.exists()), where)
        return CnnzooError(f"cannot write {path}: {blocker} is a file, not a directory")
    if err.errno == errno.EISDIR:
        return CnnzooError(f"cannot write {path}: it is a directory")
    if err.errno is None:  # not the system's word on the disk: keep it, with its traceback
        return err
    return CnnzooError(f"cannot write {path}: {err.strerror or type(err).__name__}")


@contextlib.contextmanager
def written(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write (it keeps the suffix), renamed over
    ``path`` when the block ends: no reader sees half a file. On a failure the temporary file
    goes, the previous ``path`` stays, and an ``OSError`` with an errno (a full or read-only disk)
    becomes one line (``write_error``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)  # first, so that the free space reported is what is free
        new = write_error(err, path)
        if new is err:
            raise
        raise new from err
    finally:
        tmp.unlink(missing_ok=True)
