"""Read torchvision-layout checkpoints as NumPy arrays without executing pickle code.

``.pth`` files (PyTorch's zip format and the legacy stream format) are read by
:mod:`cxrzoo.models.pth`, a restricted unpickler with bounds on every size;
``.safetensors`` files are parsed directly (JSON header + raw little-endian
data), every tensor checked to lie inside the file, without overlaps.
"""
from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from cxrzoo.models.pth import CheckpointFormatError, UnsafeCheckpointError, read_pth

__all__ = ["CheckpointFormatError", "UnsafeCheckpointError", "load_state_dict", "load_safetensors",
           "parse_safetensors", "save_safetensors", "safetensors_bytes", "save_weights", "load_weights"]

_SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
MAX_HEADER = 100 << 20  # the safetensors format's own limit on its JSON header


def load_safetensors(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """Read a ``.safetensors`` file into ``{name: array}``."""
    return parse_safetensors(Path(path).read_bytes(), str(path))[0]


def parse_safetensors(data: bytes | memoryview, where: str = "safetensors data"
                      ) -> tuple[OrderedDict[str, np.ndarray], dict[str, str]]:
    """``{name: array}`` and the metadata of safetensors bytes (checked: offsets, dtypes, header length)."""
    if len(data) < 8:
        raise CheckpointFormatError(f"{where}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if n > len(data) - 8 or n > MAX_HEADER:
        raise CheckpointFormatError(f"{where}: header length {n} runs past the end of the file")
    try:
        header = json.loads(bytes(data[8: 8 + n]))
    except (ValueError, RecursionError) as e:
        raise CheckpointFormatError(f"{where}: the header is not JSON ({e!s:.200})") from None
    if not isinstance(header, dict):
        raise CheckpointFormatError(f"{where}: the header is not a JSON object")
    body = memoryview(data)[8 + n:]
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, start, end = _entry(info, name, where)
        if not 0 <= start <= end <= len(body):
            raise CheckpointFormatError(f"{where}: tensor {name!r} lies outside the file")
        if end - start != math.prod(shape) * np.dtype(dtype).itemsize:
            raise CheckpointFormatError(f"{where}: tensor {name!r} of shape {shape} does not fill its "
                                        f"{end - start} bytes")
        spans.append((start, end, name))
    spans.sort()
    for (_, end0, a), (start1, _, b) in zip(spans, spans[1:]):
        if start1 < end0:
            raise CheckpointFormatError(f"{where}: tensors {a!r} and {b!r} overlap")
    for name, info in header.items():
        if name != "__metadata__":
            dtype, shape, start, end = _entry(info, name, where)
            try:
                arr = np.frombuffer(body[start:end], dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
            except ValueError as e:  # e.g. a zero-size shape with dimensions NumPy cannot hold
                raise CheckpointFormatError(f"{where}: tensor {name!r}: {e}") from None
            out[name] = arr.copy()
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise CheckpointFormatError(f"{where}: __metadata__ is not a JSON object")
    return out, {str(k): str(v) for k, v in meta.items()}


def _entry(info: Any, name: str, where: str) -> tuple[Any, list[int], int, int]:
    """One header entry's dtype, shape and byte span, checked for types."""
    if not isinstance(info, dict):
        raise CheckpointFormatError(f"{where}: tensor {name!r} has a malformed entry")
    dtype = _SAFETENSORS_DTYPES.get(info.get("dtype")) if isinstance(info.get("dtype"), str) else None
    if dtype is None:
        raise CheckpointFormatError(f"{where}: tensor {name!r} has unsupported dtype {info.get('dtype')!r:.50}")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    ints = lambda v: isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0  # noqa: E731
                                                 for i in v)
    if not ints(shape) or not ints(offsets) or len(offsets) != 2 or len(shape) > 32:
        raise CheckpointFormatError(f"{where}: tensor {name!r} has a malformed shape or data_offsets")
    return dtype, shape, offsets[0], offsets[1]


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
    obj = read_pth(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return OrderedDict((k, v) for k, v in obj.items() if isinstance(k, str) and isinstance(v, np.ndarray))


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
