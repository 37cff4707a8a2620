"""TensorBoard scalar summaries without TensorFlow: writing and reading ``events.out.tfevents.*`` files.

A file is a sequence of records ``len (u64) · masked crc32c(len) · Event proto · masked crc32c(proto)``;
the first Event carries ``file_version = "brain.Event:2"``, each later one a step, a wall time and a
Summary of ``(tag, simple_value)`` pairs.  Only the few protobuf fields scalars need are encoded here.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

from cxrzoo.errors import InputError

_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(v: int) -> bytes:
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall: float, step: int | None = None, version: str | None = None,
           scalars: dict[str, float] | None = None) -> bytes:
    out = b"\x09" + struct.pack("<d", wall)
    if step is not None:
        out += b"\x10" + _varint(int(step))
    if version is not None:
        out += _field(3, version.encode())
    if scalars:
        values = b"".join(_field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", float(v)))
                          for tag, v in scalars.items())
        out += _field(5, values)
    return out


class SummaryWriter:
    """Appends scalars to a new event file in ``logdir`` (created); each write is flushed."""

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.path = self.logdir / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self._f = open(self.path, "ab")
        self._record(_event(time.time(), version="brain.Event:2"))

    def _record(self, data: bytes) -> None:
        head = struct.pack("<Q", len(data))
        self._f.write(head + struct.pack("<I", _masked(head)) + data + struct.pack("<I", _masked(data)))
        self._f.flush()

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Write ``{tag: value}`` at ``step``."""
        self._record(_event(time.time(), step=step, scalars=scalars))

    def close(self) -> None:
        """Close the file."""
        self._f.close()


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _read_varint(buf, i)
        elif wire == 1:
            v, i = buf[i: i + 8], i + 8
        elif wire == 5:
            v, i = buf[i: i + 4], i + 4
        elif wire == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i: i + n], i + n
        else:
            raise InputError(f"unsupported protobuf wire type {wire}")
        yield num, v


def read_scalars(logdir: str | Path, tag: str) -> list[tuple[int, float, float]]:
    """``(step, value, wall_time)`` of every ``tag`` scalar in the event files of ``logdir``, in file order.

    Records whose checksums fail (a file cut short by a kill) end the reading of that file.
    """
    out = []
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[i: i + 8])
            if i + 16 + n > len(data):  # cut short (a kill mid-write)
                break
            rec = data[i + 12: i + 12 + n]
            if struct.unpack("<I", data[i + 12 + n: i + 16 + n])[0] != _masked(rec):
                break
            i += 16 + n
            wall, step, found = 0.0, 0, []
            for num, v in _fields(rec):
                if num == 1:
                    wall = struct.unpack("<d", v)[0]
                elif num == 2:
                    step = v
                elif num == 5:
                    for vn, value in _fields(v):
                        if vn != 1:
                            continue
                        t, x = None, None
                        for fn, fv in _fields(value):
                            if fn == 1:
                                t = fv.decode()
                            elif fn == 2:
                                x = struct.unpack("<f", fv)[0]
                        if t == tag and x is not None:
                            found.append(x)
            out.extend((step, x, wall) for x in found)
    return out
