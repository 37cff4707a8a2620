"""The PNG fast path against OpenCV: every colour type, bit depth and filter; malformed files; a short fuzz."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from cxrzoo.ingest import ImageDecodeError, decode_gray
from cxrzoo.ingest.png import area_downscale, decode_png_gray

from conftest import NIH_SAMPLE, needs_nih
from pngmaker import chunk, make_interlaced_gray8, make_png

LAYOUTS = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8),
           (4, 8), (4, 16), (6, 8), (6, 16)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _opencv(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def _sample_png(color_type, bit_depth, h=17, w=23, filters=(0, 1, 2, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    palette = trns = None
    if color_type == 3:
        n = min(1 << bit_depth, 256)
        palette = rng.integers(0, 256, (n, 3))
        trns = bytes(rng.integers(0, 256, max(1, n // 2)).astype(np.uint8))
        samples = rng.integers(0, n, (h, w, 1))
    else:
        samples = rng.integers(0, 1 << bit_depth, (h, w, CHANNELS[color_type]))
        if color_type in (2, 6):  # some pixels with r = g = b (libpng passes those through)
            samples[:4, :4, 1] = samples[:4, :4, 0]
            samples[:4, :4, 2] = samples[:4, :4, 0]
    return make_png(samples, color_type, bit_depth, filters=filters, palette=palette, trns=trns)


@pytest.mark.parametrize("color_type,bit_depth", LAYOUTS)
def test_bit_exact_with_opencv(color_type, bit_depth):
    data = _sample_png(color_type, bit_depth)
    np.testing.assert_array_equal(decode_png_gray(data, 10**6), _opencv(data))


@pytest.mark.parametrize("filt", [0, 1, 2, 3, 4])
def test_each_filter_type(filt):
    data = _sample_png(6, 8, filters=(filt,), seed=filt)
    np.testing.assert_array_equal(decode_png_gray(data, 10**6), _opencv(data))


@needs_nih
def test_real_nih_files_bit_exact():
    for path in sorted(NIH_SAMPLE.glob("*.png")):
        data = path.read_bytes()
        ref = _opencv(data)
        np.testing.assert_array_equal(decode_png_gray(data, 10**8), ref, err_msg=path.name)
        np.testing.assert_array_equal(decode_gray(data, 256), cv2.resize(ref, (256, 256),
                                                                           interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_area_downscale_equals_opencv(factor):
    img = np.random.default_rng(factor).integers(0, 256, (factor * 30, factor * 34), dtype=np.uint8)
    ref = cv2.resize(img, (34, 30), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(area_downscale(img, factor), ref)
    with pytest.raises(ValueError):
        area_downscale(img[:-1], factor)
    with pytest.raises(TypeError):
        area_downscale(img.astype(np.float32), factor)


def test_non_integer_resize_within_one_of_opencv():
    data = _sample_png(0, 8, h=300, w=300)
    ref = cv2.resize(_opencv(data), (128, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(decode_gray(data, 128).astype(int) - ref).max() <= 1


def test_interlaced_falls_back_to_opencv():
    img = np.random.default_rng(1).integers(0, 256, (19, 21), dtype=np.uint8)
    data = make_interlaced_gray8(img)
    np.testing.assert_array_equal(_opencv(data), img)  # the reference encoder is right
    np.testing.assert_array_equal(decode_gray(data), img)


def _chunks(data: bytes):
    pos, out = 8, []
    while pos < len(data):
        n, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind, data[pos + 8: pos + 8 + n]))
        pos += 12 + n
    return out


def _rebuild(chunks) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, b) for k, b in chunks)


def _ihdr(w, h, depth=8, ctype=0, inter=0):
    return struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, inter)


GOOD = _sample_png(0, 8, h=32, w=32)
_PAL = _chunks(_sample_png(3, 8, h=4, w=4))
MALFORMED = {
    "duplicate PLTE": _rebuild([c for c in _PAL for _ in range(2 if c[0] == b"PLTE" else 1)]),
    "bad CRC": GOOD[:-20] + bytes([GOOD[-20] ^ 0xFF]) + GOOD[-19:],
    "truncated": GOOD[: len(GOOD) // 2],
    "missing IEND": GOOD[:-12],
    "garbage after IEND": GOOD + b"trailing junk",
    "lying length": GOOD[:33] + struct.pack(">I", 10**6) + GOOD[37:],
    "zero width": _rebuild([(b"IHDR", _ihdr(0, 32))] + _chunks(GOOD)[1:]),
    "absurd size": _rebuild([(b"IHDR", _ihdr(100000, 100000))] + _chunks(GOOD)[1:]),
    "bad depth": _rebuild([(b"IHDR", _ihdr(32, 32, depth=7))] + _chunks(GOOD)[1:]),
    "wrong inflated size": _rebuild([(b"IHDR", _ihdr(32, 33))] + _chunks(GOOD)[1:]),
    "bad filter type": _rebuild([(b"IHDR", _ihdr(4, 1)), (b"IDAT", zlib.compress(b"\x07abcd")), (b"IEND", b"")]),
    "no IDAT": _rebuild([(b"IHDR", _ihdr(4, 1)), (b"IEND", b"")]),
    "corrupt deflate": _rebuild([(b"IHDR", _ihdr(32, 32)), (b"IDAT", b"\x78\x9c" + b"\xff" * 40), (b"IEND", b"")]),
    "not a PNG": b"GIF89a" + bytes(100),
    "empty": b"",
}


EXPECTED = {
    'duplicate PLTE': 'more than one PLTE',
    'bad CRC': 'CRC',
    'truncated': 'past the end',
    'missing IEND': 'no IEND',
    'garbage after IEND': 'garbage after IEND',
    'lying length': 'claims',
    'zero width': 'invalid dimensions',
    'absurd size': 'over the limit',
    'bad depth': 'bit depth',
    'wrong inflated size': 'inflate',
    'bad filter type': 'filter type',
    'no IDAT': 'no IDAT',
    'corrupt deflate': 'does not inflate',
    'not a PNG': 'not a decodable image',
    'empty': 'empty file',
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_give_clear_errors(name):
    with pytest.raises(ImageDecodeError, match=EXPECTED[name]):
        decode_gray(MALFORMED[name], 16, max_pixels=10**8)


def test_pixel_cap_is_configurable():
    data = _sample_png(0, 8, h=64, w=64)
    assert decode_gray(data, max_pixels=64 * 64).shape == (64, 64)
    with pytest.raises(ImageDecodeError, match="over the limit"):
        decode_gray(data, max_pixels=64 * 64 - 1)


def test_short_fuzz_never_crashes():
    """Mutations of a valid PNG (with CRCs repaired, to reach inflate and unfilter): only clean errors, and every
    mutant that decodes gives OpenCV's pixels (libpng, an independent decoder), area-resized where asked."""
    from fuzz_png import mutate  # benchmarks/fuzz_png.py: the full fuzzer runs >= 1,000,000 of these

    rng = np.random.default_rng(0)
    seeds = [_sample_png(ct, bd, h=9, w=11, seed=i) for i, (ct, bd) in enumerate(LAYOUTS)]
    seeds += [_sample_png(0, 8, h=16, w=16, seed=99)]  # square 8-bit gray: reaches the fused downscale
    ok = bad = 0
    for i in range(3000):
        data = mutate(seeds[i % len(seeds)], rng)
        size = None if i % 2 else 4
        try:
            out = decode_gray(data, size, max_pixels=1 << 20)
        except ImageDecodeError:
            bad += 1
            continue
        ok += 1
        ref = _opencv(data)
        assert ref is not None, f"mutant {i}: decoded to {out.shape}, but OpenCV cannot decode it"
        if size is not None:
            ref = cv2.resize(ref, (size, size), interpolation=cv2.INTER_AREA)
            np.testing.assert_allclose(out, ref, atol=1, err_msg=f"mutant {i}")  # block mean vs OpenCV's rounding
        else:
            np.testing.assert_array_equal(out, ref, err_msg=f"mutant {i}")
    assert ok > 0 and bad > 0  # both kinds of mutant met


def test_jpeg_reduced_decoding():
    from cxrzoo.ingest.decode import jpeg_reduction, jpeg_size

    img = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 256, (512, 640), dtype=np.uint8), (9, 9), 3)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert jpeg_size(data) == (512, 640)
    assert jpeg_reduction(data, 128) == 4 and jpeg_reduction(data, 256) == 2 and jpeg_reduction(data, 300) == 1
    full = cv2.resize(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE), (128, 128),
                      interpolation=cv2.INTER_AREA)
    fast = decode_gray(data, 128)
    assert fast.shape == (128, 128) and np.abs(fast.astype(int) - full).mean() < 2.0
    assert jpeg_size(b"\xff\xd8\xff\xd9") is None and jpeg_reduction(GOOD, 8) == 1


@pytest.mark.parametrize("side,size", [(48, 24), (48, 16), (64, 8), (60, 12), (33, 11)])
def test_fused_unfilter_downscale_equals_opencv(side, size):
    data = _sample_png(0, 8, h=side, w=side, seed=side + size)
    ref = cv2.resize(_opencv(data), (size, size), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(decode_png_gray(data, 10**6, size), ref)
