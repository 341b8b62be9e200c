"""Errors a user can fix. The command line prints their message as one line and exits non-zero."""

from __future__ import annotations


class CnnzooError(ValueError):
    """A problem with the user's input (a name, a file, a size) whose message says how to fix it."""


class UnknownModelError(CnnzooError, KeyError):
    """No model is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InputTooSmallError(CnnzooError):
    """The input is too small for the model: some layer's output would be empty."""


class CheckpointError(CnnzooError):
    """A file is not a cnnzoo checkpoint, is truncated, or belongs to another model."""


class DataError(CnnzooError):
    """A dataset is missing, truncated, empty or unreadable."""
