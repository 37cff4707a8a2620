"""The C++ kernels (kernels/*.cpp, built into cxrzoo._native) against the numba kernels and OpenCV."""
from __future__ import annotations

import numpy as np
import pytest

from cxrzoo.ingest import _pngkernels as K
from cxrzoo.ingest import native

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="cxrzoo._native is not built")


def _filtered(rng, h, stride, types):
    raw = rng.integers(0, 256, (h, stride + 1), dtype=np.uint8)
    raw[:, 0] = rng.choice(types, h)
    return raw.ravel()


@pytest.mark.parametrize("bpp", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("types", [[0, 1, 2, 3, 4], [3, 4], [4], [1, 3]])
def test_unfilter_equals_reference(bpp, types):
    rng = np.random.default_rng(bpp * 10 + len(types))
    for h, w in [(1, 1), (2, 1), (7, 5), (33, 64), (64, 33)]:
        stride = w * bpp
        raw = _filtered(rng, h, stride, types)
        ref = np.empty((h, stride), np.uint8)
        assert K._unfilter_fast(raw, h, stride, bpp, ref) == -1
        out = np.empty((h, stride), np.uint8)
        assert native.unfilter(raw, h, stride, bpp, out) == -1
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("h", [1, 2, 14, 15, 16, 29, 30, 31, 46, 100])
def test_wavefront_blocks_and_edges_equal_reference(h):
    """One byte per pixel runs as a 15-row SIMD wavefront: block ends, chunk edges, all five types."""
    rng = np.random.default_rng(h)
    for w in [1, 2, 3, 15, 16, 17, 31, 32, 33, 47, 1024]:
        raw = _filtered(rng, h, w, [0, 1, 2, 3, 4])
        ref = np.empty((h, w), np.uint8)
        assert K._unfilter_fast(raw, h, w, 1, ref) == -1
        out = np.empty((h, w), np.uint8)
        assert native.unfilter(raw, h, w, 1, out) == -1
        np.testing.assert_array_equal(out, ref, err_msg=f"{h}x{w}")


def test_unfilter_reports_first_bad_row():
    rng = np.random.default_rng(1)
    for bad in [0, 1, 5, 6, 9]:
        raw = _filtered(rng, 10, 16, [3, 4]).reshape(10, 17)
        raw[bad, 0] = 5
        assert native.unfilter(raw.ravel(), 10, 16, 1, np.empty((10, 16), np.uint8)) == bad


def test_wrappers_check_arguments():
    raw = np.zeros(4 * 9, np.uint8)
    with pytest.raises(ValueError):
        native.unfilter(raw, 4, 9, 1, np.empty((4, 8), np.uint8))  # raw too short for stride 9
    with pytest.raises(TypeError):
        native.unfilter(raw.astype(np.int16), 4, 8, 1, np.empty((4, 8), np.uint8))
    with pytest.raises(ValueError):
        native.area_down(np.zeros((8, 8), np.uint8), 3, np.empty((2, 2), np.uint8))
    with pytest.raises(TypeError):
        native.area_down(np.zeros((8, 8), np.uint8)[:, ::2], 2, np.empty((4, 2), np.uint8))


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 8, 16])
def test_area_down_equals_opencv(factor):
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(factor).integers(0, 256, (factor * 13, factor * 17), dtype=np.uint8)
    out = np.empty((13, 17), np.uint8)
    native.area_down(img, factor, out)
    np.testing.assert_array_equal(out, cv2.resize(img, (17, 13), interpolation=cv2.INTER_AREA))


def test_decoder_reuses_large_buffers_on_glibc():
    """Importing the decoder raised glibc's mmap threshold (idempotent; False only off glibc)."""
    import platform

    from cxrzoo.ingest import _alloc, decode  # noqa: F401  (decode's import applies it)

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _alloc.reuse_large_buffers() is True and _alloc._done
