"""``overlay``: a heatmap drawn over its radiograph, as a PNG (OpenCV)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from cxrzoo.atomic import write_bytes
from cxrzoo.errors import InputError, JobFailedError


def overlay(image: np.ndarray, heatmap: np.ndarray, fraction: float = 1.0, alpha: float = 0.45,
            path: str | os.PathLike | None = None, box: tuple[float, float, float, float] | None = None,
            encoding: str = "png") -> bytes:
    """Render ``heatmap`` over ``image`` and return the PNG bytes (also written atomically to ``path``).

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` uint8 gray radiograph (any size: the original file or the ingested image).
    heatmap : numpy.ndarray
        ``(h, w)`` map of one label (e.g. a row of the scorer's ``heatmaps``), any float dtype;
        min-max normalised and drawn with the JET colormap (red = most evidence).
    fraction : float
        Share of each image side the map covers, centered: the IR card's
        ``heatmaps.covers.fraction`` (the network sees a center crop).
    alpha : float
        Opacity of the colour over the crop.
    box : (x, y, w, h), optional
        A ground-truth box (image pixels) drawn as a green rectangle.
    encoding : {"png", "jpg"}
        PNG (lossless, the default) or JPEG at quality 85 (for pages holding many).
    """
    if encoding not in ("png", "jpg"):
        raise InputError(f"encoding must be 'png' or 'jpg', got {encoding!r}")
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 2:
        raise InputError(f"image must be (H, W) uint8 gray, got {img.dtype} {img.shape}")
    hm = np.asarray(heatmap, np.float32)
    if hm.ndim != 2 or not np.isfinite(hm).all():
        raise InputError(f"heatmap must be a finite (h, w) map, got shape {hm.shape}")
    if not 0 < fraction <= 1 or not 0 <= alpha <= 1:
        raise InputError(f"fraction must be in (0, 1] and alpha in [0, 1], got {fraction}, {alpha}")
    h, w = img.shape
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    lo, hi = float(hm.min()), float(hm.max())
    norm = (hm - lo) / (hi - lo) if hi > lo else np.zeros_like(hm)
    up = cv2.resize(norm, (cw, ch), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.clip(up * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    region = out[y0:y0 + ch, x0:x0 + cw]
    out[y0:y0 + ch, x0:x0 + cw] = cv2.addWeighted(region, 1 - alpha, colour, alpha, 0)
    if box is not None:
        bx, by, bw, bh = (int(round(v)) for v in box)
        cv2.rectangle(out, (bx, by), (bx + bw, by + bh), (0, 220, 0), max(1, h // 256))
    ok, png = cv2.imencode(f".{encoding}", out, [cv2.IMWRITE_JPEG_QUALITY, 85] if encoding == "jpg" else [])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
        raise JobFailedError("OpenCV could not encode the overlay")
    data = png.tobytes()
    if path is not None:
        write_bytes(path, data)
    return data
