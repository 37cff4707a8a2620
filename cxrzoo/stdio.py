"""Keep the terminal's stdout for what the user asked for: output of the JVM and libraries goes to stderr."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Iterator

_lock = threading.Lock()
_depth = 0
_saved: int | None = None


@contextlib.contextmanager
def fd_stdout_to_stderr() -> Iterator[None]:
    """Send what is written to file descriptor 1 (e.g. the JVM's ``System.out``) to stderr for the duration.

    Nested and concurrent uses share one redirect (counted), so fd 1 comes back when the last one ends.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            sys.stdout.flush()
            _saved = os.dup(1)
            os.dup2(2, 1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                sys.stdout.flush()
                os.dup2(_saved, 1)
                os.close(_saved)
                _saved = None
