"""Decode untrusted DICOM files in a child process with bounded memory and time.

pydicom's parser and the codec plugins (C extensions: openjpeg, libjpeg, charls, RLE) run on bytes from
outside.  A C decoder that loops or crashes on a crafted file would hang or kill the Spark task, and with
it the job; so the Arrow UDF hands each DICOM file to one long-lived child process per Python worker:

- the child's address space is capped (``RLIMIT_AS``, default 2 GiB), so a lying header cannot exhaust
  the executor's memory;
- each file has a time limit (default 30 s): past it the child is killed and restarted, and the row gets
  an error saying so;
- a child that dies (a segfault in a codec) is restarted, and the row gets an error naming the signal.

Messages are length-prefixed frames on the child's stdin/stdout: the request is the file and its
parameters, the answer the resized uint8 image and the header fields (JSON), or the error's text.
The cost is a 64 KiB image over a pipe per file; the child starts once per Python worker.
"""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import time

import numpy as np

from cxrzoo.ingest.dicom import DicomError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MEMORY = 2 << 30
_HEADER = struct.Struct("<cQ")  # kind, payload length
_STARTUP = 120.0  # seconds for a child to import its decoders


def _write(fd, kind: bytes, payload: bytes) -> None:
    fd.write(_HEADER.pack(kind, len(payload)))
    fd.write(payload)
    fd.flush()


class DecoderCrashed(DicomError):
    """The decoding child died or overran its time limit on this file (the message says which)."""


class SandboxedDecoder:
    """A child process decoding DICOM files one at a time (see the module's docstring).

    Parameters
    ----------
    timeout : float
        Seconds allowed per file.
    memory : int
        The child's address-space cap in bytes.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY) -> None:
        self.timeout, self.memory = float(timeout), int(memory)
        self._proc: subprocess.Popen | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, OMP_NUM_THREADS="1", CXRZOO_SANDBOX_MEMORY=str(self.memory))
        return subprocess.Popen([sys.executable, "-m", "cxrzoo.ingest.sandbox"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            self.restarts += 1

    def close(self) -> None:
        """Stop the child."""
        if self._proc is not None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> "SandboxedDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_exact(self, n: int, deadline: float) -> bytes:
        out = bytearray()
        fd = self._proc.stdout.fileno()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def decode(self, data: bytes, size: int | None, max_pixels: int, voi: str) -> tuple[np.ndarray, dict]:
        """Decode one file in the child: ``(image, header fields)`` as :func:`cxrzoo.ingest.dicom.decode_dicom`
        and then resized to ``size``² as :func:`cxrzoo.ingest.decode.decode_image` does.

        Raises
        ------
        DicomError
            The file cannot be decoded (the child's reason), or :class:`DecoderCrashed`.
        """
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
            try:  # the child's imports are not the file's time
                self._read_exact(_HEADER.size, time.monotonic() + _STARTUP)
            except (TimeoutError, EOFError):
                self._kill()
                raise DecoderCrashed(f"the decoder process did not start within {_STARTUP:g} s") from None
        params = json.dumps({"size": size, "max_pixels": max_pixels, "voi": voi}).encode()
        try:
            _write(self._proc.stdin, b"R", struct.pack("<I", len(params)) + params + data)
            deadline = time.monotonic() + self.timeout
            kind, n = _HEADER.unpack(self._read_exact(_HEADER.size, deadline))
            payload = self._read_exact(n, deadline)
        except TimeoutError:
            self._kill()
            raise DecoderCrashed(f"decoding took longer than the {self.timeout:g} s limit; the decoder was "
                                 "stopped (a damaged or crafted file?)") from None
        except (EOFError, BrokenPipeError, OSError):
            code = self._proc.wait() if self._proc is not None else None
            self._proc = None
            self.restarts += 1
            why = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            if code == 137 or (code is not None and -code == signal.SIGKILL):
                why += f" (over the {self.memory >> 20} MiB memory cap?)"
            raise DecoderCrashed(f"the decoder died on this file ({why}); a damaged or crafted file?") from None
        if kind == b"E":
            raise DicomError(payload.decode("utf-8", "replace"))
        meta_len = struct.unpack("<I", payload[:4])[0]
        meta = json.loads(payload[4:4 + meta_len])
        shape = meta.pop("_shape")
        return np.frombuffer(payload[4 + meta_len:], np.uint8).reshape(shape).copy(), meta


_shared: SandboxedDecoder | None = None


def shared_decoder(timeout: float = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY) -> SandboxedDecoder:
    """The process's decoder child (started on first use, reused across tasks of a Python worker)."""
    global _shared
    if _shared is None or (_shared.timeout, _shared.memory) != (float(timeout), int(memory)):
        if _shared is not None:
            _shared.close()
        _shared = SandboxedDecoder(timeout, memory)
        import atexit

        atexit.register(_shared.close)
    return _shared


def _serve() -> None:
    """The child: decode requests from stdin until it closes."""
    import resource

    memory = int(os.environ.get("CXRZOO_SANDBOX_MEMORY", DEFAULT_MEMORY))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    import pydicom.pixels  # noqa: F401  (imported before "ready": a file's time is its decoding)

    from cxrzoo.ingest.decode import decode_dicom_resized

    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own descriptor: a codec printing on stdout cannot corrupt it
    os.dup2(2, 1)
    _write(out, b"K", b"")  # ready
    while True:
        head = inp.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return
        _, n = _HEADER.unpack(head)
        body = inp.read(n)
        plen = struct.unpack("<I", body[:4])[0]
        params = json.loads(body[4:4 + plen])
        try:
            img, meta = decode_dicom_resized(body[4 + plen:], params["size"], params["max_pixels"], params["voi"])
            meta["_shape"] = list(img.shape)
            blob = json.dumps(meta).encode()
            _write(out, b"O", struct.pack("<I", len(blob)) + blob + img.tobytes())
        except DicomError as e:
            _write(out, b"E", str(e).encode())
        except MemoryError:
            _write(out, b"E", f"decoding needs more than the {memory >> 20} MiB memory cap".encode())
        except Exception as e:  # noqa: BLE001 -- the sandbox's boundary: any failure on a file is that file's error
            _write(out, b"E", f"unexpected {type(e).__name__} in the decoder: {str(e)[:300]}".encode())


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    _serve()
