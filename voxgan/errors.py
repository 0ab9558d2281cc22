"""Errors a user can fix. The CLIs print them as one line and exit with status 2."""

from __future__ import annotations

from pydantic import ValidationError


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a
    one-line error quotes of a library's multi-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_validation_error(exc: ValidationError) -> str:
    """pydantic's first error as one line that names the dotted key."""
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"]) or "config"
    if err["type"] == "extra_forbidden":
        return f"unknown config key '{key}'"
    message = err["msg"].removeprefix("Value error, ")
    return f"invalid value for '{key}': {message} (got {err.get('input')!r})"


class VoxganError(Exception):
    """A problem with the user's input (config, data, flags, files): never a bug in voxgan."""


class ConfigError(VoxganError):
    """A config key is unknown or its value is invalid."""


class DataError(VoxganError):
    """A data file or folder cannot be used; the message names it."""


class CheckpointError(VoxganError):
    """A file is not a voxgan checkpoint."""


class Diverged(Exception):
    """Training produced a NaN or infinite loss.

    Not a user error: the run ends with a clear "diverged at epoch N" result instead of a crash.
    """

    def __init__(self, epoch: int, what: str = "loss", kimg: float | None = None):
        super().__init__(f"diverged at epoch {epoch}: {what} is not finite")
        self.epoch = epoch
        self.kimg = kimg
