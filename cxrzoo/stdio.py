"""Keep the terminal's stdout for what the user asked for: output of the JVM and libraries goes to stderr."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def fd_stdout_to_stderr() -> Iterator[None]:
    """Send what is written to file descriptor 1 (e.g. the JVM's ``System.out``) to stderr for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
