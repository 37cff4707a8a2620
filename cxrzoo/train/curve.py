"""The learning curve as a PNG: training loss and validation mean AUC per epoch (drawn with OpenCV)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cxrzoo.errors import JobFailedError

_W, _H, _M = 720, 400, 60  # canvas and margin, pixels
_LOSS, _AUC, _INK = (200, 80, 30), (40, 140, 40), (60, 60, 60)  # BGR


def _polyline(img: np.ndarray, xs: list[float], ys: list[float], lo: float, hi: float, color) -> None:
    pts = []
    for x, y in zip(xs, ys):
        if y is None:
            continue
        px = int(_M + x * (_W - 2 * _M))
        py = int(_H - _M - (y - lo) / (hi - lo or 1.0) * (_H - 2 * _M))
        pts.append((px, py))
        cv2.circle(img, (px, py), 4, color, -1, cv2.LINE_AA)
    if len(pts) > 1:
        cv2.polylines(img, [np.array(pts, np.int32)], False, color, 2, cv2.LINE_AA)


def write_learning_curve(history: list[dict], path: str | Path) -> Path | None:
    """Draw loss (left scale) and validation mean AUC (right scale, 0.5–1) per epoch; None without history."""
    if not history:
        return None
    img = np.full((_H, _W, 3), 255, np.uint8)
    n = len(history)
    xs = [i / max(1, n - 1) for i in range(n)]
    loss = [h.get("loss") for h in history]
    auc = [h.get("val_mean_auc") for h in history]
    known = [v for v in loss if v is not None]
    lo, hi = (min(known), max(known)) if known else (0.0, 1.0)
    cv2.rectangle(img, (_M, _M), (_W - _M, _H - _M), _INK, 1)
    _polyline(img, xs, loss, lo, hi, _LOSS)
    _polyline(img, xs, auc, 0.5, 1.0, _AUC)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, f"training loss ({lo:.3f} - {hi:.3f})", (_M, _M - 25), font, 0.5, _LOSS, 1, cv2.LINE_AA)
    cv2.putText(img, "validation mean AUC (0.5 - 1.0)", (_W // 2, _M - 25), font, 0.5, _AUC, 1, cv2.LINE_AA)
    cv2.putText(img, f"epoch 1 .. {n}", (_W // 2 - 40, _H - _M + 30), font, 0.5, _INK, 1, cv2.LINE_AA)
    out = Path(path)
    if not cv2.imwrite(str(out), img):
        raise JobFailedError(f"could not write {out}")
    return out
