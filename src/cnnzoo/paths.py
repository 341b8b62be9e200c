"""Paths checked before any work is done: an output that can really be written, an input file
that can be read without blocking."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import CnnzooError

_WHY = {errno.EROFS: "a read-only file system", errno.EACCES: "permission denied"}

# The files a training run keeps in its directory, which no other output may replace.
RUN_FILES = ("last.pt", "best.pt", "interrupted.pt", "metrics.csv")


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
