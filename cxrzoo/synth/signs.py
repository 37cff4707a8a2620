"""The 14 findings' signs: each draws on the image and returns where it drew (boxes, before rotation).

Each sign takes (image, lung mask, anatomy, rng, strength in [0.5, 1]); the geometry findings change the
anatomy before the base is drawn.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from cxrzoo.synth.draw import Anatomy, _add_drawing, _blurred_blob, _ellipse_box, _pt, _roi, _union

def _lung_point(a: Anatomy, rng: np.random.Generator, side: int, ylo: float, yhi: float) -> tuple[float, float]:
    inner, outer = a.bounds(side)
    x = inner + (outer - inner) * rng.uniform(0.3, 0.8)
    y = a.lung_top + (a.dome_y - a.lung_top) * rng.uniform(ylo, yhi)
    return x, y


# --- signs: each takes (img, lungs, anatomy, rng, strength in [0.5, 1]) ---

def _atelectasis(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.6, 0.85)
    angle = rng.uniform(-20, 20)
    _blurred_blob(img, x, y, 0.09, 0.016, 0.22 * s, 0.012, angle=angle, mask=lungs)
    return a.in_lung(_ellipse_box(x, y, 0.09, 0.016, angle))


def _effusion(img, lungs, a, rng, s):
    boxes = []
    for side in ((0,), (1,), (0, 1))[int(rng.integers(3))]:
        inner, outer = a.bounds(side)
        h = 0.04 + 0.06 * s  # fluid level rises with strength; blunts the costophrenic angle
        cx, ax = outer - (outer - inner) * 0.25, abs(outer - inner) * 0.55
        _blurred_blob(img, cx, a.dome_y + 0.03, ax, h, 0.32 * s, 0.02, mask=lungs)
        boxes += a.in_lung(_ellipse_box(cx, a.dome_y + 0.03, ax, h))
    return boxes


def _infiltration(img, lungs, a, rng, s):
    side = int(rng.integers(2))
    boxes = []
    for _ in range(7):
        x, y = _lung_point(a, rng, side, 0.2, 0.9)
        ax, ay = rng.uniform(0.02, 0.035), rng.uniform(0.02, 0.035)
        _blurred_blob(img, x, y, ax, ay, 0.12 * s, 0.02, mask=lungs)
        boxes.append(_ellipse_box(x, y, ax, ay))
    return a.in_lung(_union(boxes))


def _mass(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.2, 0.75)
    rad = rng.uniform(0.035, 0.055)
    ay = rad * rng.uniform(0.85, 1.15)
    _blurred_blob(img, x, y, rad, ay, 0.30 * s, 0.006)
    return [_ellipse_box(x, y, rad, ay)]


def _nodule(img, lungs, a, rng, s):
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        x, y = _lung_point(a, rng, int(rng.integers(2)), 0.1, 0.8)
        rad = rng.uniform(0.010, 0.017)
        _blurred_blob(img, x, y, rad, rad, 0.32 * s, 0.003)
        boxes.append(_ellipse_box(x, y, rad, rad))
    return boxes


def _pneumonia(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.45, 0.85)
    _blurred_blob(img, x, y, 0.07, 0.06, 0.20 * s, 0.03, mask=lungs)
    _blurred_blob(img, x, y, 0.03, 0.03, 0.10 * s, 0.02, mask=lungs)
    return a.in_lung(_ellipse_box(x, y, 0.07, 0.06))


def _pneumothorax(img, lungs, a, rng, s):
    side = int(rng.integers(2))
    inner, outer = a.bounds(side)
    sgn = 1 if side else -1
    x, y = outer - sgn * 0.05, a.lung_top + 0.12
    ax, ay = 0.04 + 0.03 * s, 0.10 + 0.06 * s
    ys, xs, ox, oy = _roi(img, x, y, ay + 0.02)
    r = img.shape[0]
    layer = np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.float32)
    c = (int((x - ox) * r), int((y - oy) * r))
    cv2.ellipse(layer, c, (int(ax * r), int(ay * r)), sgn * 12, 0, 360, 1.0, -1, cv2.LINE_AA)
    layer *= lungs[ys, xs]
    win = img[ys, xs]
    # lucent rim without lung markings, bounded by a thin visceral pleural line
    win -= layer * (win - 0.03) * (0.5 + 0.4 * s)
    line = np.zeros_like(layer)
    cv2.ellipse(line, c, (int(ax * r), int(ay * r)), sgn * 12, 90 if side else 270, 270 if side else 450,
                0.08 * s, max(1, r // 300), cv2.LINE_AA)
    win += line * lungs[ys, xs]
    return a.in_lung(_ellipse_box(x, y, ax, ay, sgn * 12))


def _consolidation(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.35, 0.75)
    r = img.shape[0]
    ys, xs, ox, oy = _roi(img, x, y, 0.09)
    layer = np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.float32)
    cv2.rectangle(layer, _pt(x - ox - 0.06, y - oy - 0.045, r), _pt(x - ox + 0.06, y - oy + 0.045, r),
                  0.28 * s, -1)
    img[ys, xs] += cv2.GaussianBlur(layer, (5, 5), 0) * lungs[ys, xs]
    return a.in_lung((x - 0.06, y - 0.045, x + 0.06, y + 0.045))


def _edema(img, lungs, a, rng, s):
    for sgn in (-1, 1):  # perihilar bat-wing haze, both sides
        _blurred_blob(img, 0.5 + sgn * (a.gap + 0.07), 0.47, 0.08, 0.11, 0.15 * s, 0.03, mask=lungs)
    r = img.shape[0]

    def kerley(layer: np.ndarray) -> None:  # Kerley B lines at the lateral lung bases
        for _ in range(12):
            side = int(rng.integers(2))
            sgn = 1 if side else -1
            y = a.dome_y - rng.uniform(0.02, 0.14)
            x0 = a.bounds(side)[1] - sgn * 0.01
            cv2.line(layer, _pt(x0, y, r), _pt(x0 - sgn * 0.035, y, r), 0.12 * s, max(1, r // 256), cv2.LINE_AA)

    _add_drawing(img, kerley, lungs)
    return []  # diffuse: no box (as in NIH's list)


def _fibrosis(img, lungs, a, rng, s):
    r = img.shape[0]

    def net(layer: np.ndarray) -> None:  # reticular pattern in the lower, peripheral zones
        for _ in range(60):
            x, y = _lung_point(a, rng, int(rng.integers(2)), 0.5, 0.95)
            dx, dy = rng.uniform(-0.025, 0.025, size=2)
            cv2.line(layer, _pt(x, y, r), _pt(x + dx, y + dy, r), 0.10 * s, max(1, r // 256), cv2.LINE_AA)

    _add_drawing(img, net, lungs)
    return []


def _pleural_thickening(img, lungs, a, rng, s):
    r = img.shape[0]

    def rind(layer: np.ndarray) -> None:  # a pleural rind along the apex and lateral wall
        for side in ((0,), (1,), (0, 1))[int(rng.integers(3))]:
            poly = (a.lung_polygon(side) * r).astype(np.int32)
            cv2.polylines(layer, [poly[:22]], False, 0.20 * s, max(2, r // 80), cv2.LINE_AA)

    _add_drawing(img, rind, lungs)
    return []


def _hernia(img, lungs, a, rng, s):
    # hiatal hernia: a retrocardiac soft-tissue mass with a gas bubble and air-fluid level
    x, y = 0.5 + rng.uniform(-0.02, 0.02), a.dome_y - 0.05
    _blurred_blob(img, x, y, 0.05, 0.04, 0.12 * s, 0.005)
    _blurred_blob(img, x, y - 0.01, 0.035, 0.018, -0.30 * s, 0.004)
    return [_ellipse_box(x, y, 0.05, 0.04)]


def _cardiomegaly_geometry(a, rng, s):
    a.heart_w *= 1.3 + 0.35 * s
    a.heart_h *= 1.1 + 0.15 * s


def _emphysema_geometry(a, rng, s):
    a.lung_density += 0.12 * s  # hyperlucent lungs
    a.flat = 0.15  # flattened domes
    a.dome_y += 0.04 * s  # hyperinflation
    a.lung_w *= 1.04


def _atelectasis_geometry(a, rng, s):
    a.dome_shift[int(rng.integers(2))] -= 0.035 * s  # volume loss raises one hemidiaphragm


GEOMETRY: dict[str, Callable] = {
    "Cardiomegaly": _cardiomegaly_geometry,
    "Emphysema": _emphysema_geometry,
    "Atelectasis": _atelectasis_geometry,
}
SIGNS: dict[str, Callable] = {
    "Atelectasis": _atelectasis,
    "Effusion": _effusion,
    "Infiltration": _infiltration,
    "Mass": _mass,
    "Nodule": _nodule,
    "Pneumonia": _pneumonia,
    "Pneumothorax": _pneumothorax,
    "Consolidation": _consolidation,
    "Edema": _edema,
    "Fibrosis": _fibrosis,
    "Pleural_Thickening": _pleural_thickening,
    "Hernia": _hernia,
}


