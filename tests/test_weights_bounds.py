"""The .pth / safetensors reader against crafted files: bounds, bombs, recursion, sharing, BUILD, bfloat16."""
import json
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _pth_writer import ODict, Tensor, pickle_bytes, zip_checkpoint  # benchmarks/: crafts any geometry

from cxrzoo.models import pth
from cxrzoo.models.weights import CheckpointFormatError, UnsafeCheckpointError, load_state_dict


def _zip(path: Path, obj, members: dict, compress: bool = False) -> Path:
    path.write_bytes(zip_checkpoint(obj, members, deflate=compress))
    return path


_View = Tensor  # (key, numel, offset, size, stride, kind)


DATA = np.arange(12, dtype="<f4")


def test_negative_stride_is_refused_not_read_out_of_bounds(tmp_path):
    """A negative stride passed the old sum-of-extents check, then as_strided read before the buffer (SIGSEGV)."""
    path = _zip(tmp_path / "w.pth", {"w": _View("0", 12, 11, (4, 1 << 40), (-3, 1 << 20))}, {"0": DATA.tobytes()})
    with pytest.raises(CheckpointFormatError, match="non-negative"):
        load_state_dict(path)


def test_negative_offset_is_refused(tmp_path):
    """A negative offset loaded silently wrong values (a slice from the end)."""
    path = _zip(tmp_path / "w.pth", {"w": _View("0", 12, -4, (4,), (1,))}, {"0": DATA.tobytes()})
    with pytest.raises(CheckpointFormatError, match="non-negative"):
        load_state_dict(path)


def test_views_inside_the_storage_still_load(tmp_path):
    path = _zip(tmp_path / "w.pth", {"w": _View("0", 12, 1, (2, 3), (4, 2)), "e": _View("0", 12, 0, (0, 7), (7, 1)),
                                     "s": _View("0", 12, 5, (), ())}, {"0": DATA.tobytes()})
    sd = load_state_dict(path)
    np.testing.assert_array_equal(sd["w"], [[1, 3, 5], [5, 7, 9]])
    assert sd["e"].shape == (0, 7)
    assert sd["s"].shape == () and sd["s"] == 5.0  # 0-d, like BatchNorm's num_batches_tracked
    path = _zip(tmp_path / "w.pth", {"w": _View("0", 12, 9, (4,), (1,))}, {"0": DATA.tobytes()})
    with pytest.raises(CheckpointFormatError, match="runs past its storage"):
        load_state_dict(path)


def test_zero_strides_cannot_ask_for_unbounded_memory(tmp_path):
    """Zero strides over a 1-element storage passed the check; ascontiguousarray then asked for 4 TiB."""
    path = _zip(tmp_path / "w.pth", {"w": _View("0", 1, 0, (1 << 20, 1 << 20), (0, 0))}, {"0": DATA[:1].tobytes()})
    with pytest.raises(CheckpointFormatError, match="would materialise"):
        load_state_dict(path)


def test_zip_bomb_is_refused_before_it_inflates(tmp_path):
    """200 MB of zeros deflate to ~200 KB; the old reader inflated the member whole (4.1 GB RSS for 2 MB)."""
    numel = 50_000_000
    path = _zip(tmp_path / "w.pth", {"w": _View("0", numel, 0, (numel,), (1,))}, {"0": bytes(4 * numel)},
                compress=True)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(CheckpointFormatError, match="zip bomb"):
        load_state_dict(path)


def test_declared_size_must_match_the_member(tmp_path):
    path = _zip(tmp_path / "w.pth", {"w": _View("0", 6, 0, (6,), (1,))}, {"0": DATA.tobytes()})  # 12 stored
    with pytest.raises(CheckpointFormatError, match="holds 48 bytes, the pickle declares 24"):
        load_state_dict(path)


def test_self_reference_is_a_format_error(tmp_path):
    loop = []
    loop.append(loop)
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"a": loop}, protocol=2))
    with pytest.raises(CheckpointFormatError, match="refers to itself"):
        load_state_dict(path)


def test_shared_objects_are_materialised_once(tmp_path):
    """60 levels of [x, x] are 60 objects in the pickle (its memo shares them) but 2**60 leaves if expanded:
    the old reader ran out of memory; in a child process, so a regression fails instead of stalling."""
    x: list = [1.0]
    for _ in range(60):
        x = [x, x]
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"dag": x}, protocol=2))
    assert path.stat().st_size < 2000
    code = ("import sys; from cxrzoo.models.weights import load_state_dict; "
            "print(len(load_state_dict(sys.argv[1])))")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stderr[-2000:]


def test_deep_nesting_is_a_format_error(tmp_path):
    """500 nested lists (EMPTY_LIST x 500, APPEND x 499): the old reader's recursion hit RecursionError."""
    deep = b"\x80\x02}X\x04\x00\x00\x00deep" + b"]" * 500 + b"a" * 499 + b"s."
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", deep)
    with pytest.raises(CheckpointFormatError, match="nested deeper"):
        load_state_dict(path)


def test_bfloat16_storage_loads_as_float32(tmp_path):
    ref = np.array([1.0, -2.5, 3.140625, 0.0, 65280.0, -1e-3], np.float32)
    ref = ((ref.view("<u4") >> 16) << 16).view("<f4")  # what bfloat16 holds of each value
    raw = (ref.view("<u4") >> 16).astype("<u2").tobytes()
    path = _zip(tmp_path / "w.pth", {"w": _View("0", 6, 0, (2, 3), (3, 1), kind="BFloat16Storage")}, {"0": raw})
    sd = load_state_dict(path)
    assert sd["w"].dtype == np.float32
    np.testing.assert_array_equal(sd["w"], ref.reshape(2, 3))


def test_build_cannot_set_attributes_of_the_readers_objects(tmp_path):
    """BUILD on torch's rebuild function (the reader's own function) used to set its attributes."""
    evil = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x08\x00\x00\x00injectedK\x01sb."
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", evil)
    with pytest.raises(UnsafeCheckpointError, match="set attributes of a function"):
        load_state_dict(path)
    assert not hasattr(pth._rebuild_tensor, "injected")


def test_legacy_storage_size_is_checked_before_reading(tmp_path):
    """A legacy file declaring a 4 TiB storage over 16 real bytes is refused from its header."""
    numel = 1 << 40
    path = tmp_path / "w.pth"
    heads = b"".join(pickle_bytes(h) for h in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    path.write_bytes(heads + pickle_bytes(ODict({"w": Tensor("0", numel, 0, (4,), (1,))})) + pickle_bytes(["0"])
                     + struct.pack("<q", numel) + np.ones(4, "<f4").tobytes())
    with pytest.raises(CheckpointFormatError, match="truncated or has the wrong size"):
        load_state_dict(path)


def test_safetensors_overlaps_and_bad_entries_are_refused(tmp_path):
    a = np.arange(6, dtype="<f4")

    def write(header):
        head = json.dumps(header).encode()
        path = tmp_path / "w.safetensors"
        path.write_bytes(struct.pack("<Q", len(head)) + head + a.tobytes())
        return path

    ok = {"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    np.testing.assert_array_equal(load_state_dict(write(ok))["x"], a.reshape(2, 3))
    many = {f"t{i}": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]} for i in range(50)}
    with pytest.raises(CheckpointFormatError, match="overlap"):
        load_state_dict(write(many))
    with pytest.raises(CheckpointFormatError, match="does not fill"):
        load_state_dict(write({"x": {"dtype": "F32", "shape": [7], "data_offsets": [0, 24]}}))
    with pytest.raises(CheckpointFormatError, match="malformed shape"):
        load_state_dict(write({"x": {"dtype": "F32", "shape": [-2, -3], "data_offsets": [0, 24]}}))
    with pytest.raises(CheckpointFormatError, match="not a JSON object"):
        load_state_dict(write([1, 2]))


def test_short_fuzz_run_has_no_crash_hang_overrun_or_outside_read():
    """benchmarks/fuzz_weights.py on 1,000 inputs (the full run is >= 100,000): every class, each file in a child
    process under a time limit, its peak RSS bounded, crafted views checked element by element."""
    from fuzz_weights import CLASSES, run

    res = run(1000, workers=1, seed=7, limit=10.0)
    assert res["inputs"] == 1000 and set(res["by_class"]) == set(CLASSES)
    assert res["crashes"] == 0 and res["hangs"] == 0, res["crash_examples"]
    assert res["memory_overruns"] == 0 and res["reads_outside"] == 0
    assert res["views_checked"] >= 10 and res["loaded"] >= 50 and res["rejected"] >= 500


def test_what_the_fuzzer_found_is_a_format_error(tmp_path):
    """fuzz_weights, 100,000 inputs: a BYTEARRAY8 opcode declaring 2**60 bytes (the unpickler allocated them:
    MemoryError) and a zip member flagged encrypted (zipfile's RuntimeError)."""
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x05\x96" + struct.pack("<Q", 1 << 60) + b".")
    with pytest.raises(CheckpointFormatError, match="protocol-5 bytearray"):
        load_state_dict(path)
    raw = bytearray(zip_checkpoint({"w": Tensor("0", 3, 0, (3,), (1,))}, {"0": DATA[:3].tobytes()}))
    at = raw.index(b"PK\x01\x02")  # the first central-directory entry; its flags are at +8
    raw[at + 8] |= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointFormatError, match="encrypted"):
        load_state_dict(path)
