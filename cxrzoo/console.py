"""The terminal is for people: cxrzoo's own progress and results there, everything else in a log file.

:func:`quiet_console` points file descriptors 1 and 2 of the process at a log file, so that what the
JVM (Spark's log4j lines, BigDL's ``System.out``), the Python workers it starts and the libraries
(BigDL's ``creating: createXxx`` prints, NNCF's bars, py4j) write lands there; cxrzoo's log records
and its progress bars go to the terminal's stderr, and results (tables, JSON) to its stdout through
:func:`stdout`.  A progress bar stays on the terminal's last line: a log line is printed above it and
the bar redrawn (:class:`Terminal`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Terminal:
    """Lines of text with at most one progress bar below them, on one stream.

    On a terminal the bar is redrawn in place and a line printed while it shows goes above it;
    elsewhere (a pipe, a file) only lines are written, and a bar only as its final line.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._bar = ""
        self._lock = threading.RLock()

    def line(self, text: str) -> None:
        """Print ``text`` (one or more lines) above the bar."""
        with self._lock:
            if self.tty and self._bar:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            if self.tty and self._bar:
                self.stream.write(self._bar)
            self.stream.flush()

    def bar(self, text: str) -> None:
        """Show ``text`` as the bar (on a terminal; elsewhere it is only remembered)."""
        with self._lock:
            self._bar = text
            if self.tty:
                self.stream.write("\r\033[K" + text)
                self.stream.flush()

    def end_bar(self, final: str | None = None) -> None:
        """Remove the bar, leaving ``final`` (if given) as a line."""
        with self._lock:
            if self.tty and self._bar:
                self.stream.write("\r\033[K")
            self._bar = ""
            if final:
                self.stream.write(final + "\n")
            self.stream.flush()


_terminal: Terminal | None = None
_stdout: TextIO | None = None


def terminal() -> Terminal:
    """Where progress goes: the console's terminal while :func:`quiet_console` runs, else ``sys.stderr``."""
    return _terminal if _terminal is not None else Terminal(sys.stderr)


def stdout() -> TextIO:
    """Where results go: the terminal's stdout while :func:`quiet_console` runs, else ``sys.stdout``."""
    return _stdout if _stdout is not None else sys.stdout


class ConsoleHandler(logging.Handler):
    """Log records as plain lines above the progress bar (warnings and errors say so)."""

    def __init__(self, term: Terminal, only: tuple[str, ...] | None = ("cxrzoo",), level: int = logging.INFO) -> None:
        super().__init__(level=level)
        self.term, self.only = term, only

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging's name
        if self.only and not any(record.name == p or record.name.startswith(p + ".") or
                                 (p == "bench" and record.name.startswith("bench_")) for p in self.only):
            return False
        return not getattr(record, "cxrzoo_drawn", False)  # an epoch line its progress bar printed

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR:
                msg += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.levelno >= logging.ERROR:
                msg = "error: " + msg
            elif record.levelno >= logging.WARNING:
                msg = "warning: " + msg
            self.term.line(msg)
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)


def default_log_path(command: str, out_dir: str | os.PathLike | None = None) -> Path:
    """``<out_dir>/cxrzoo-<command>.log``, or a new file under ``$CXRZOO_LOG_DIR`` (default: the temp dir)."""
    if out_dir is not None:
        return Path(out_dir) / f"cxrzoo-{command}.log"
    root = Path(os.environ.get("CXRZOO_LOG_DIR") or Path(tempfile.gettempdir()) / "cxrzoo-logs")
    return root / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def _terminal_stream(current: TextIO, fd: int, saved: int) -> tuple[TextIO, bool]:
    """A stream on the saved terminal descriptor, or ``current`` when it is not on ``fd`` at all (pytest's
    capsys, a notebook's stream): results and progress then keep going where the embedder wants them."""
    try:
        on_fd = current.fileno() == fd
    except (AttributeError, OSError, ValueError):
        on_fd = False
    if not on_fd:
        return current, False
    return os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace"), True


@dataclass
class Console:
    """What :func:`quiet_console` set up."""

    log_path: Path
    terminal: Terminal
    out: TextIO


@contextlib.contextmanager
def quiet_console(log_path: str | os.PathLike, verbose: bool = False, quiet: bool = False,
                  show: tuple[str, ...] = ("cxrzoo",)) -> Iterator[Console]:
    """Run the block with the terminal for cxrzoo and everything else in ``log_path`` (appended to).

    Parameters
    ----------
    log_path : path
        The log file (its directory is created).  Every log record at INFO and above goes there too.
    verbose : bool
        Leave file descriptors 1 and 2 on the terminal and show every library's log records.
    quiet : bool
        Only warnings and errors of cxrzoo on the terminal (results still go to :func:`stdout`).
    show : tuple of str
        Loggers (and their children) shown on the terminal; ``"bench"`` also shows the ``bench_*`` loggers.
    """
    global _terminal, _stdout
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    out, own_out = _terminal_stream(sys.stdout, 1, saved_out)
    err, own_err = _terminal_stream(sys.stderr, 2, saved_err)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    file_handler = logging.StreamHandler(os.fdopen(os.dup(log_fd), "a", buffering=1, encoding="utf-8",
                                                   errors="replace"))
    file_handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    term = Terminal(err)
    console = ConsoleHandler(term, only=None if verbose else show,
                             level=logging.WARNING if quiet else logging.INFO)
    root = logging.getLogger()
    old_level, old_handlers = root.level, list(root.handlers)
    for h in old_handlers:
        root.removeHandler(h)
    root.addHandler(file_handler)
    root.addHandler(console)
    root.setLevel(logging.INFO)
    noisy = {name: logging.getLogger(name).level for name in ("py4j", "py4j.clientserver", "py4j.java_gateway")}
    for name in noisy:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    if not verbose:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    _terminal, _stdout = term, out
    try:
        yield Console(path, term, out)
    finally:
        term.end_bar()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        _terminal = _stdout = None
        logging.captureWarnings(False)
        root.removeHandler(file_handler)
        root.removeHandler(console)
        file_handler.close()
        for h in old_handlers:
            root.addHandler(h)
        root.setLevel(old_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)
        for stream, own in ((out, own_out), (err, own_err)):
            if own:
                stream.close()
