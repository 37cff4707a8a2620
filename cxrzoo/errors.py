"""cxrzoo's exceptions: one tree, two branches, one exit status each.

::

    CXRZooError
    ├── InputError      (also a ValueError)    bad input: a path, a file, an option value   exit status 2
    └── JobFailedError  (also a RuntimeError)  the job itself failed                        exit status 1

Every exception cxrzoo defines derives from one branch (and, where callers already caught a built-in type,
from that type as well, e.g. ``ModelDirError`` is an :class:`InputError` and a ``ValueError``). The command
line maps exit statuses by these two classes alone (:func:`exit_status`); the message of each names the
file, row or option and the fix.
"""
from __future__ import annotations

__all__ = ["CXRZooError", "InputError", "JobFailedError", "PathExistsError", "PathNotFoundError", "exit_status"]


class CXRZooError(Exception):
    """Root of every exception cxrzoo raises on purpose."""

    exit_status: int = 1


class InputError(CXRZooError, ValueError):
    """Bad input: a path that does not exist, a file that cannot be read, an option value out of range, a model
    or label this install does not know. The user can fix it; the command line exits with status 2."""

    exit_status = 2


class JobFailedError(CXRZooError, RuntimeError):
    """The job failed on valid input: an epoch that kept failing, a cluster that lost every executor, an
    inference request that failed. The command line exits with status 1."""

    exit_status = 1


def exit_status(error: BaseException) -> int:
    """The command line's exit status for ``error``: 2 for :class:`InputError`, 1 for anything else."""
    return error.exit_status if isinstance(error, CXRZooError) else 1


class PathNotFoundError(InputError, FileNotFoundError):
    """A path given as input does not exist (also a ``FileNotFoundError``)."""


class PathExistsError(InputError, FileExistsError):
    """An output path exists and overwriting was not asked for (also a ``FileExistsError``)."""
