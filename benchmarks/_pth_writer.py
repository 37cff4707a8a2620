"""Write PyTorch-format checkpoints byte by byte, geometry included, for the weights fuzzer and its tests.

The pickle is emitted opcode by opcode (protocol 2, as torch writes it) so that a checkpoint can say anything a
hostile one could: any offset, size, stride or declared storage size, shared and self-referencing objects,
BUILD on any object.  No torch is needed, and nothing here is imported by cxrzoo.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np

_OP = pickle  # opcodes: pickle.MARK, pickle.TUPLE, ...


@dataclass(eq=False)
class Tensor:
    """``_rebuild_tensor_v2(storage(key, kind, numel), offset, size, stride, False, OrderedDict())``."""

    key: str
    numel: int
    offset: int
    size: tuple
    stride: tuple
    kind: str = "FloatStorage"


@dataclass(eq=False)
class ODict:
    """``collections.OrderedDict`` with items and an optional BUILD state (torch's ``_metadata``)."""

    items: dict = field(default_factory=dict)
    state: object = None


class _Writer:
    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.memo: dict[int, int] = {}
        self.keep: list[object] = []  # memoised objects stay alive, so no id() is reused by another

    def w(self, b: bytes) -> None:
        self.out.write(b)

    def put(self, obj: object) -> None:
        i = self.memo[id(obj)] = len(self.memo)
        self.keep.append(obj)
        self.w(_OP.BINPUT + bytes([i]) if i < 256 else _OP.LONG_BINPUT + struct.pack("<I", i))

    def get(self, obj: object) -> bool:
        i = self.memo.get(id(obj))
        if i is None:
            return False
        self.w(_OP.BINGET + bytes([i]) if i < 256 else _OP.LONG_BINGET + struct.pack("<I", i))
        return True

    def glob(self, module: str, name: str) -> None:
        self.w(_OP.GLOBAL + f"{module}\n{name}\n".encode())

    def save(self, o: object) -> None:  # noqa: C901 - one branch per type
        if o is None:
            self.w(_OP.NONE)
        elif isinstance(o, bool):
            self.w(_OP.NEWTRUE if o else _OP.NEWFALSE)
        elif isinstance(o, int):
            if 0 <= o < 256:
                self.w(_OP.BININT1 + bytes([o]))
            elif -(1 << 31) <= o < (1 << 31):
                self.w(_OP.BININT + struct.pack("<i", o))
            else:
                raw = o.to_bytes((o.bit_length() + 8) // 8, "little", signed=True)
                self.w(_OP.LONG1 + bytes([len(raw)]) + raw)
        elif isinstance(o, float):
            self.w(_OP.BINFLOAT + struct.pack(">d", o))
        elif isinstance(o, str):
            raw = o.encode()
            self.w(_OP.BINUNICODE + struct.pack("<I", len(raw)) + raw)
        elif self.get(o):
            return
        elif isinstance(o, tuple):
            self.w(_OP.MARK)
            for v in o:
                self.save(v)
            self.w(_OP.TUPLE)
            self.put(o)
        elif isinstance(o, list):
            self.w(_OP.EMPTY_LIST)
            self.put(o)
            if o:
                self.w(_OP.MARK)
                for v in o:
                    self.save(v)
                self.w(_OP.APPENDS)
        elif isinstance(o, (dict, ODict)):
            if isinstance(o, ODict):
                self.glob("collections", "OrderedDict")
                self.w(_OP.EMPTY_TUPLE + _OP.REDUCE)
            else:
                self.w(_OP.EMPTY_DICT)
            self.put(o)
            items = o.items if isinstance(o, ODict) else o
            if items:
                self.w(_OP.MARK)
                for k, v in items.items():
                    self.save(k)
                    self.save(v)
                self.w(_OP.SETITEMS)
            if isinstance(o, ODict) and o.state is not None:
                self.save(o.state)
                self.w(_OP.BUILD)
        elif isinstance(o, Tensor):
            self.glob("torch._utils", "_rebuild_tensor_v2")
            self.w(_OP.MARK + _OP.MARK)
            self.save("storage")
            self.glob("torch", o.kind)
            for v in (o.key, "cpu", o.numel):
                self.save(v)
            self.w(_OP.TUPLE + _OP.BINPERSID)
            for v in (o.offset, tuple(o.size), tuple(o.stride), False, ODict()):
                self.save(v)
            self.w(_OP.TUPLE + _OP.REDUCE)
            self.put(o)
        else:
            raise TypeError(f"cannot write {type(o).__name__}")


def pickle_bytes(obj: object) -> bytes:
    """``obj`` (dicts, lists, tuples, scalars, :class:`Tensor`, :class:`ODict`) as a protocol-2 pickle."""
    wr = _Writer()
    wr.w(_OP.PROTO + b"\x02")
    wr.save(obj)
    wr.w(_OP.STOP)
    return wr.out.getvalue()


def zip_checkpoint(obj: object, storages: dict[str, bytes], deflate: bool = False) -> bytes:
    """torch's zip layout: ``archive/data.pkl``, ``byteorder``, ``data/<key>``, ``version``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes(obj))
        z.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def legacy_checkpoint(obj: object, storages: dict[str, bytes], itemsize: dict[str, int]) -> bytes:
    """torch's legacy stream: magic, protocol, sys info, the object, the storage keys, then each storage."""
    out = b"".join(pickle_bytes(h) for h in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    out += pickle_bytes(obj) + pickle_bytes(list(storages))
    for key, raw in storages.items():
        out += struct.pack("<q", len(raw) // itemsize[key]) + raw
    return out


def safetensors(tensors: dict[str, np.ndarray]) -> bytes:
    """A ``.safetensors`` file (cxrzoo's own writer is under test, so this one is written out here)."""
    import json

    names = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64", np.dtype("u1"): "U8"}
    header, blobs, at = {}, [], 0
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)
