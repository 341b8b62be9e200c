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


class ModelArgumentError(CnnzooError, TypeError):
    """An unknown or invalid argument for a model (``num_clases=10``, ``drop_path_rate=1.5``).

    Both a ``TypeError`` (what Python raises for an unexpected keyword) and, through
    ``CnnzooError``, a ``ValueError``; the message names the closest valid argument or the valid
    range.
    """


class WeightsError(CnnzooError):
    """Published weights are unavailable: none exist for the model, the file is not cached and
    there is no network, or a download does not match its published hash."""
