"""Read torchvision-layout checkpoints as NumPy arrays without executing pickle code.

``.pth`` files (PyTorch's zip format and the legacy stream format) are read with
a restricted unpickler that rebuilds tensors and ordered dicts and refuses every
other global, so a malicious checkpoint cannot run code; ``.safetensors`` files
are parsed directly (JSON header + raw little-endian data).
"""
from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_, "BFloat16Storage": None,
}
_SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint asks to load code other than tensors and dicts."""


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint this reader understands."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: only carries the dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """A flat array filled later (legacy format) or at once (zip format)."""

    def __init__(self, dtype, numel: int):
        self.dtype, self.numel = dtype, numel
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage: _Storage, offset: int, size, stride, *_ignored) -> "_LazyTensor":
    return _LazyTensor(storage, int(offset), tuple(size), tuple(stride))


class _LazyTensor:
    """A view into a storage, materialised once every storage has its bytes."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise CheckpointFormatError("a tensor refers to a storage whose bytes are missing")
        itemsize = data.dtype.itemsize
        if not self.size:
            return np.array(data[self.offset])
        needed = self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if needed > len(data):
            raise CheckpointFormatError(f"tensor of shape {self.size} runs past its storage ({len(data)} elements)")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size,
                                               strides=tuple(s * itemsize for s in self.stride), writeable=False)
        return np.ascontiguousarray(view)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, f: BinaryIO, storages: dict[str, _Storage], zip_loader=None):
        super().__init__(f)
        self.storages, self.zip_loader = storages, zip_loader

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES and _STORAGE_DTYPES[name] is not None:
            return _StorageType(name)
        raise UnsafeCheckpointError(f"refused to load {module}.{name}: a weights file may only contain tensors "
                                    "and dicts (this one asks to run code)")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"unexpected storage type {storage_type!r}")
        if key not in self.storages:
            st = _Storage(storage_type.dtype, numel)
            if self.zip_loader is not None:
                st.data = self.zip_loader(key, storage_type.dtype)
            self.storages[key] = st
        return self.storages[key]


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _load_legacy(f: BinaryIO) -> Any:
    restricted = lambda: _RestrictedUnpickler(f, {})  # noqa: E731
    magic = restricted().load()
    if magic != _LEGACY_MAGIC:
        raise CheckpointFormatError("not a PyTorch checkpoint (bad magic number)")
    restricted().load()  # protocol version
    restricted().load()  # sys info
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, storages).load()
    for key in keys:
        st = storages.get(str(key))
        if st is None:
            raise CheckpointFormatError(f"storage {key!r} is listed but never used")
        (numel,) = struct.unpack("<q", f.read(8))
        raw = f.read(numel * np.dtype(st.dtype).itemsize)
        if numel != st.numel or len(raw) != numel * np.dtype(st.dtype).itemsize:
            raise CheckpointFormatError(f"storage {key!r} is truncated or has the wrong size")
        st.data = np.frombuffer(raw, dtype=np.dtype(st.dtype).newbyteorder("<"))
    return obj


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointFormatError(f"{path}: zip checkpoint without data.pkl")
        prefix = pkl[: -len("data.pkl")]

        def load_storage(key: str, dtype) -> np.ndarray:
            return np.frombuffer(z.read(f"{prefix}data/{key}"), dtype=np.dtype(dtype).newbyteorder("<"))

        return _RestrictedUnpickler(io.BytesIO(z.read(pkl)), {}, load_storage).load()


def load_safetensors(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """Read a ``.safetensors`` file into ``{name: array}``."""
    return parse_safetensors(Path(path).read_bytes(), str(path))[0]


def parse_safetensors(data: bytes | memoryview, where: str = "safetensors data"
                      ) -> tuple[OrderedDict[str, np.ndarray], dict[str, str]]:
    """``{name: array}`` and the metadata of safetensors bytes (checked: offsets, dtypes, header length)."""
    if len(data) < 8:
        raise CheckpointFormatError(f"{where}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if n > len(data) - 8:
        raise CheckpointFormatError(f"{where}: header length {n} runs past the end of the file")
    header = json.loads(bytes(data[8: 8 + n]))
    body = memoryview(data)[8 + n:]
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise CheckpointFormatError(f"{where}: tensor {name!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= len(body):
            raise CheckpointFormatError(f"{where}: tensor {name!r} lies outside the file")
        arr = np.frombuffer(body[start:end], dtype=np.dtype(dtype).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"]).copy()
    return out, dict(header.get("__metadata__") or {})


def load_state_dict(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """A checkpoint's tensors by name, as NumPy arrays, without running any code from the file.

    Parameters
    ----------
    path : path
        ``.pth``/``.pt`` (zip or legacy format; a ``{"state_dict": ...}`` wrapper is unwrapped)
        or ``.safetensors``.

    Raises
    ------
    UnsafeCheckpointError
        The pickle asks for anything but tensors and dicts.
    CheckpointFormatError
        Truncated or otherwise malformed files.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as f:
            obj = _load_legacy(f)
    obj = _materialise(obj)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return OrderedDict((k, v) for k, v in obj.items() if isinstance(v, np.ndarray))


_DTYPE_NAMES = {np.dtype(v).newbyteorder("<").str: k for k, v in _SAFETENSORS_DTYPES.items()}
_KINDS = ("weight", "bias", "running_mean", "running_var")


def save_safetensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write ``{name: array}`` as a ``.safetensors`` file (JSON header + raw little-endian data), in name order."""
    with open(path, "wb") as f:
        for part in _safetensors_parts(tensors, metadata):
            f.write(part)


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """What :func:`save_safetensors` writes, as bytes."""
    return b"".join(_safetensors_parts(tensors, metadata))


def _safetensors_parts(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> list[bytes]:
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    blobs, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        dtype = _DTYPE_NAMES.get(arr.dtype.str)
        if dtype is None:
            raise TypeError(f"tensor {name!r}: dtype {arr.dtype} has no safetensors name")
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data to 8 bytes
    return [struct.pack("<Q", len(head)), head, *blobs]


def save_weights(path: str | Path, weights: dict[str, dict[str, np.ndarray]]) -> None:
    """Write engine-neutral weights ``{node: {kind: array}}`` as safetensors keyed ``node.kind``
    (torchvision's state-dict names for the registry's backbones)."""
    save_safetensors(path, {f"{node}.{kind}": arr for node, d in weights.items() for kind, arr in d.items()},
                     metadata={"format": "cxrzoo-weights/1"})


def load_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read what :func:`save_weights` wrote back into ``{node: {kind: array}}`` (no code is run)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in load_safetensors(path).items():
        node, _, kind = key.rpartition(".")
        if not node or kind not in _KINDS:
            raise CheckpointFormatError(f"{path}: {key!r} is not a node.{'|'.join(_KINDS)} weight name")
        out.setdefault(node, {})[kind] = arr
    return out
