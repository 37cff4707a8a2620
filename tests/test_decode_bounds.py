"""Files that make OpenCV raise, or whose header declares more pixels than the cap: clean errors, error rows."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from cxrzoo.ingest import ImageDecodeError, decode_gray, read_images

from pngmaker import chunk

LYING_PGM = b"P5\n60000 60000\n255\n" + b"\0" * 64  # OpenCV reads its header and refuses 3.6e9 pixels by raising
# an interlaced PNG (OpenCV decodes those) declaring 40000², over OpenCV's own 2^30 limit: cv2.imdecode raises
LYING_INTERLACED = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 1))
                    + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
OPENCV_RAISED = r"decoder failed on this file \(OpenCV: .*CV_IO_MAX_IMAGE_PIXELS"


def _jpeg(side: int = 64) -> bytes:
    img = cv2.GaussianBlur(np.random.default_rng(side).integers(0, 256, (side, side), dtype=np.uint8), (5, 5), 2)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _declaring(jpeg: bytes, h: int, w: int) -> bytes:
    """``jpeg`` with its start-of-frame patched to declare ``h``×``w`` (the scan data left as it is)."""
    data = bytearray(jpeg)
    at = data.find(b"\xff\xc0")
    assert at > 0, "no baseline SOF"
    data[at + 5: at + 7], data[at + 7: at + 9] = h.to_bytes(2, "big"), w.to_bytes(2, "big")
    return bytes(data)


def test_what_opencv_raises_becomes_an_image_decode_error():
    """Files declaring 40000² (under a raised cap, over OpenCV's own 2^30): cv2.imdecode raises cv2.error."""
    with pytest.raises(ImageDecodeError, match=OPENCV_RAISED):
        decode_gray(_declaring(_jpeg(), 40000, 40000), None, max_pixels=1 << 32)
    with pytest.raises(ImageDecodeError, match=OPENCV_RAISED):
        decode_gray(LYING_INTERLACED, 32, max_pixels=1 << 32)


@pytest.mark.parametrize("size", [None, 256])
def test_a_jpeg_declaring_too_many_pixels_is_refused_before_decoding(size):
    bomb = _declaring(_jpeg(), 60000, 60000)  # 190 bytes of scan declaring 3.6e9 pixels
    with pytest.raises(ImageDecodeError, match=r"60000x60000 pixels is over the limit of 67108864"):
        decode_gray(bomb, size)


def test_a_normal_jpeg_over_a_lowered_cap_is_refused():
    data = _jpeg(64)
    assert decode_gray(data, 32, max_pixels=64 * 64).shape == (32, 32)
    with pytest.raises(ImageDecodeError, match=r"64x64 pixels is over the limit of 4095"):
        decode_gray(data, 32, max_pixels=64 * 64 - 1)


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".webp"])
def test_formats_whose_size_is_not_checked_are_refused(ext):
    """Another OpenCV format (whatever the file's name) would be decoded without the pixel cap: refused."""
    data = cv2.imencode(ext, np.full((16, 16), 99, np.uint8))[1].tobytes()
    with pytest.raises(ImageDecodeError, match=r"not a decodable image .*expected PNG, JPEG or DICOM"):
        decode_gray(data, 8)


def test_files_opencv_raises_on_are_error_rows_not_a_failed_job(spark, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "good.png"), np.full((40, 40), 7, np.uint8))
    (images / "good.jpg").write_bytes(_jpeg(48))
    (images / "lying.png").write_bytes(LYING_PGM)  # a PGM named .png
    (images / "interlaced.png").write_bytes(LYING_INTERLACED)
    (images / "bomb.jpg").write_bytes(_declaring(_jpeg(), 60000, 60000))
    cap = 3_000_000_000  # raised past OpenCV's 2^30, below the bomb's 3.6e9
    rows = {r.image_index: r for r in read_images(spark, str(images), size=32, max_pixels=cap).collect()}
    assert sorted(rows) == ["bomb.jpg", "good.jpg", "good.png", "interlaced.png", "lying.png"]
    assert rows["good.png"].error is None and rows["good.png"].image == bytes([7]) * 32 * 32
    assert rows["good.jpg"].error is None and len(rows["good.jpg"].image) == 32 * 32
    lying, interlaced, bomb = rows["lying.png"], rows["interlaced.png"], rows["bomb.jpg"]
    assert lying.image is None and lying.error.startswith("lying.png: not a decodable image")
    assert interlaced.image is None and interlaced.error.startswith("interlaced.png: the decoder failed on this file")
    assert "CV_IO_MAX_IMAGE_PIXELS" in interlaced.error
    assert bomb.image is None and bomb.error == (f"bomb.jpg: 60000x60000 pixels is over the limit of {cap} "
                                                 "(raise max_pixels if this is intended)")
