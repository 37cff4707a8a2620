"""Read PyTorch ``.pth`` checkpoints (zip and legacy formats) as NumPy arrays, running no code from the file.

A checkpoint is an untrusted file.  The reader therefore:

- unpickles with Python's pure-Python unpickler restricted to three globals (torch's tensor rebuild functions
  and ``OrderedDict``) and torch's storage-type names; every other global is refused;
- refuses ``BUILD`` (attribute setting) on everything but dicts, whose state is dropped (torch stores a
  state dict's ``_metadata`` there), so a file cannot alter the reader's own objects;
- checks every tensor's offset, shape and strides (ints, none negative) against its storage before taking a
  view, so no read leaves a buffer;
- checks every storage's declared size against the bytes the file holds before reading them, and caps the
  zip's decompressed size at a fixed multiple of the file's, so a zip bomb is refused before it inflates;
- caps what the tensors may materialise at a fixed multiple of the storage bytes (zero strides could
  otherwise ask for any size), and materialises shared objects once (a pickle may share one list in many
  places, which would otherwise expand exponentially), refusing self-referencing and deeply nested objects.

Every malformed file raises :class:`CheckpointFormatError`; a file asking to run code raises
:class:`UnsafeCheckpointError`.
"""
from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from cxrzoo.errors import InputError

_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bf16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_DEPTH = 64  # nesting of lists, tuples and dicts in a checkpoint's object
MAX_NDIM = 32  # dimensions of one tensor
ZIP_RATIO = 16  # a zip checkpoint may inflate to this many times its own size (torch writes them uncompressed)
OUTPUT_RATIO = 4  # tensors may materialise this many times the storage bytes (shared storages, bf16 -> f32)
SLACK = 1 << 20  # bytes always allowed on top of the ratios


class UnsafeCheckpointError(InputError, pickle.UnpicklingError):
    """The checkpoint asks to load code other than tensors and dicts."""


class CheckpointFormatError(InputError):
    """The file is not a checkpoint this reader understands, or it is malformed."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: only carries the element type."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bf16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A flat array of one storage's elements (raw uint16 for bfloat16)."""

    __slots__ = ("kind", "numel", "data")

    def __init__(self, kind: _StorageType, numel: int):
        self.kind, self.numel = kind, numel
        self.data: np.ndarray | None = None


class _Dict(OrderedDict):
    """``collections.OrderedDict`` as the unpickler builds it: BUILD state (torch's ``_metadata``) is dropped."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CheckpointFormatError("a dict's pickled state is not a dict")


class _Budget:
    """Bytes the tensors may still materialise."""

    __slots__ = ("left",)

    def __init__(self, storage_bytes: int):
        self.left = OUTPUT_RATIO * storage_bytes + SLACK

    def take(self, nbytes: int, shape: tuple) -> None:
        if nbytes > self.left:
            raise CheckpointFormatError(f"a tensor of shape {shape} would materialise {nbytes} bytes, more than "
                                        f"{OUTPUT_RATIO}x the file's storage bytes allow (zero strides?)")
        self.left -= nbytes


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _LazyTensor:
    """A view into a storage, materialised once every storage has its bytes."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
        if not isinstance(storage, _Storage):
            raise CheckpointFormatError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
        if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
            raise CheckpointFormatError("a tensor's size and stride must be sequences")
        if len(size) != len(stride) or len(size) > MAX_NDIM:
            raise CheckpointFormatError(f"a tensor has {len(size)} sizes and {len(stride)} strides")
        if not (_is_int(offset) and offset >= 0 and all(_is_int(v) and v >= 0 for v in (*size, *stride))):
            raise CheckpointFormatError(f"a tensor's offset {offset!r}, size {tuple(size)!r} and stride "
                                        f"{tuple(stride)!r} must be non-negative integers")
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def numpy(self, budget: _Budget) -> np.ndarray:
        data, kind = self.storage.data, self.storage.kind
        if data is None:
            raise CheckpointFormatError("a tensor refers to a storage whose bytes are missing")
        count = math.prod(self.size)
        out_dtype = np.dtype("<f4") if kind.dtype == "bf16" else data.dtype
        budget.take(count * out_dtype.itemsize, self.size)
        if count == 0:
            return np.zeros(self.size, out_dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= len(data):
            raise CheckpointFormatError(f"a tensor of shape {self.size} at offset {self.offset} with strides "
                                        f"{self.stride} runs past its storage ({len(data)} elements)")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size, writeable=False,
                                               strides=tuple(s * data.itemsize if n > 1 else 0
                                                             for n, s in zip(self.size, self.stride)))
        arr = view.copy()  # C order, and 0-d stays 0-d (ascontiguousarray would make it 1-d)
        if kind.dtype == "bf16":  # bfloat16 is the upper half of a float32
            arr = (arr.astype("<u4") << 16).view("<f4")
        return arr

    def __setstate__(self, state: Any) -> None:
        raise UnsafeCheckpointError("the checkpoint tries to set attributes of a tensor")


def _rebuild_tensor(storage: Any = None, offset: Any = None, size: Any = None, stride: Any = None,
                    *_ignored: Any) -> _LazyTensor:
    return _LazyTensor(storage, offset, size, stride)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): _Dict,
}


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python one: its BUILD can be restricted
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, f: io.BytesIO, storages: dict[str, _Storage], load_bytes=None):
        super().__init__(f)
        self.storages, self.load_bytes = storages, load_bytes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(f"refused to load {module}.{name}: a weights file may only contain tensors "
                                    "and dicts (this one asks to run code)")

    def _build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is not _Dict:
            raise UnsafeCheckpointError(f"the checkpoint tries to set attributes of a {type(inst).__name__}")
        inst.__setstate__(state)

    dispatch[pickle.BUILD[0]] = _build

    def _bytearray8(self) -> None:  # it allocates the declared length before reading: torch never writes it
        raise CheckpointFormatError("the pickle holds a protocol-5 bytearray, which no checkpoint has")

    dispatch[pickle.BYTEARRAY8[0]] = _bytearray8

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r:.200}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(kind, _StorageType):
            raise UnsafeCheckpointError(f"unexpected storage type {kind!r:.200}")
        if not (isinstance(key, str) or _is_int(key)) or not _is_int(numel) or numel < 0:
            raise CheckpointFormatError(f"a storage's key {key!r:.100} or size {numel!r:.100} is malformed")
        key = str(key)
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = _Storage(kind, numel)
            if self.load_bytes is not None:
                st.data = _frombuffer(self.load_bytes(key, numel * kind.itemsize), kind)
        elif st.kind.dtype != kind.dtype or st.numel != numel:
            raise CheckpointFormatError(f"storage {key!r} is declared twice with different types or sizes")
        return st


def _frombuffer(raw: bytes | memoryview, kind: _StorageType) -> np.ndarray:
    return np.frombuffer(raw, dtype="<u2" if kind.dtype == "bf16" else kind.dtype)


def _materialise(obj: Any, budget: _Budget) -> Any:
    """Lists, tuples and dicts with their tensors as arrays; each shared object converted once."""
    done: dict[int, Any] = {}
    active: set[int] = set()

    def walk(o: Any, depth: int) -> Any:
        if not isinstance(o, (_LazyTensor, dict, list, tuple)):
            return o
        if id(o) in done:
            return done[id(o)]
        if id(o) in active:
            raise CheckpointFormatError("the checkpoint's object refers to itself")
        if depth > MAX_DEPTH:
            raise CheckpointFormatError(f"the checkpoint's object is nested deeper than {MAX_DEPTH} levels")
        active.add(id(o))
        if isinstance(o, _LazyTensor):
            out: Any = o.numpy(budget)
        elif isinstance(o, dict):
            out = OrderedDict((k, walk(v, depth + 1)) for k, v in o.items())
        else:
            out = type(o)(walk(v, depth + 1) for v in o)
        active.discard(id(o))
        done[id(o)] = out
        return out

    return walk(obj, 0)


def _load_legacy(raw: bytes) -> tuple[Any, int]:
    view = memoryview(raw)
    f = io.BytesIO(raw)  # pickles one after the other, then the storages' bytes

    def unpickle(storages: dict[str, _Storage]) -> Any:
        return _RestrictedUnpickler(f, storages).load()

    if unpickle({}) != _LEGACY_MAGIC:
        raise CheckpointFormatError("not a PyTorch checkpoint (bad magic number)")
    unpickle({})  # protocol version
    unpickle({})  # sys info
    storages: dict[str, _Storage] = {}
    obj, keys = unpickle(storages), unpickle(storages)
    if not isinstance(keys, (list, tuple)):
        raise CheckpointFormatError("the storage list is not a list")
    stored = 0
    for key in keys:
        st = storages.get(str(key))
        if st is None or st.data is not None:
            raise CheckpointFormatError(f"storage {key!r:.100} is listed but never used, or listed twice")
        head = f.read(8)
        nbytes = st.numel * st.kind.itemsize
        if len(head) != 8 or struct.unpack("<q", head)[0] != st.numel or nbytes > len(raw) - f.tell():
            raise CheckpointFormatError(f"storage {key!r:.100} is truncated or has the wrong size")
        st.data = _frombuffer(view[f.tell(): f.tell() + nbytes], st.kind)
        f.seek(nbytes, io.SEEK_CUR)
        stored += nbytes
    return obj, stored


def _load_zip(path: Path, size: int) -> tuple[Any, int]:
    with zipfile.ZipFile(path) as z:
        infos = {i.filename: i for i in z.infolist()}
        lying = next((i.filename for i in infos.values() if i.compress_size > size), None)
        if lying is not None:
            raise CheckpointFormatError(f"zip member {lying!r:.100} claims more bytes than the file holds")
        if sum(i.file_size for i in infos.values()) > ZIP_RATIO * size + SLACK:
            raise CheckpointFormatError(f"the zip would inflate to more than {ZIP_RATIO}x its size (a zip bomb?)")
        pkl = next((n for n in infos if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointFormatError("zip checkpoint without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        order = z.read(infos[prefix + "byteorder"]).strip() if prefix + "byteorder" in infos else b"little"
        if order != b"little":
            raise CheckpointFormatError(f"byte order {order[:16]!r} is not supported (little-endian only)")
        stored = 0

        def load_bytes(key: str, nbytes: int) -> bytes:
            nonlocal stored
            info = infos.get(f"{prefix}data/{key}")
            if info is None:
                raise CheckpointFormatError(f"storage {key!r:.100} is missing from the zip")
            if info.file_size != nbytes:
                raise CheckpointFormatError(f"storage {key!r:.100} holds {info.file_size} bytes, the pickle "
                                            f"declares {nbytes}")
            stored += nbytes
            with z.open(info) as member:
                raw = member.read(nbytes + 1)
            if len(raw) != nbytes:
                raise CheckpointFormatError(f"storage {key!r:.100} is truncated")
            return raw

        obj = _RestrictedUnpickler(io.BytesIO(z.read(infos[pkl])), {}, load_bytes).load()
        return obj, stored


def read_pth(path: str | Path) -> Any:
    """The object a ``.pth`` file holds, tensors as NumPy arrays (see the module docstring for the checks).

    Raises
    ------
    UnsafeCheckpointError
        The pickle asks for anything but tensors and dicts, or to set attributes.
    CheckpointFormatError
        The file is truncated, malformed, or asks for more memory than it holds.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        if zipfile.is_zipfile(path):
            obj, stored = _load_zip(path, size)
        else:
            obj, stored = _load_legacy(path.read_bytes())
        return _materialise(obj, _Budget(stored))
    except (UnsafeCheckpointError, CheckpointFormatError) as e:
        raise type(e)(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, zipfile.BadZipFile, zipfile.LargeZipFile, RecursionError, OverflowError,
            NotImplementedError, LookupError, zlib.error, RuntimeError, OSError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise  # the file itself could not be read: not the checkpoint's fault (RuntimeError: encrypted zip)
        raise CheckpointFormatError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e!s:.200})") from None
