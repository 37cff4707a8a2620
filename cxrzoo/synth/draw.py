"""Drawing primitives of the phantom, box geometry and the per-patient anatomy (units of the image width)."""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

def _pt(x: float, y: float, r: int) -> tuple[int, int]:
    return int(round(x * r)), int(round(y * r))


def _ellipse(img: np.ndarray, cx: float, cy: float, ax: float, ay: float, value: float,
             angle: float = 0.0, thickness: int = -1) -> None:
    r = img.shape[0]
    cv2.ellipse(img, _pt(cx, cy, r), (max(1, int(ax * r)), max(1, int(ay * r))), angle, 0, 360,
                float(value), thickness, cv2.LINE_AA)


def _roi(img: np.ndarray, cx: float, cy: float, half: float) -> tuple[slice, slice, float, float]:
    """Pixel window around (cx, cy) of half-width ``half`` (image units), and its origin."""
    r = img.shape[0]
    x0, x1 = max(0, int((cx - half) * r)), min(r, int((cx + half) * r) + 1)
    y0, y1 = max(0, int((cy - half) * r)), min(r, int((cy + half) * r) + 1)
    return slice(y0, max(y0 + 1, y1)), slice(x0, max(x0 + 1, x1)), x0 / r, y0 / r


def _blurred_blob(img: np.ndarray, cx: float, cy: float, ax: float, ay: float, value: float,
                  sigma: float, angle: float = 0.0, mask: np.ndarray | None = None) -> None:
    """Add a soft-edged elliptical opacity (value > 0) or lucency (value < 0), within ``mask``."""
    r = img.shape[0]
    ys, xs, ox, oy = _roi(img, cx, cy, max(ax, ay) + 3 * sigma)
    layer = np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.float32)
    c = (int((cx - ox) * r), int((cy - oy) * r))
    cv2.ellipse(layer, c, (max(1, int(ax * r)), max(1, int(ay * r))), angle, 0, 360, float(value), -1,
                cv2.LINE_AA)
    k = max(3, int(sigma * r) | 1)
    layer = cv2.GaussianBlur(layer, (k, k), 0)
    if mask is not None:
        layer *= mask[ys, xs]
    img[ys, xs] += layer


def _add_drawing(img: np.ndarray, draw: Callable[[np.ndarray], None], mask: np.ndarray | None = None) -> None:
    """Run a cv2 drawing call on a blank layer and add the layer (cv2 draws by overwriting)."""
    layer = np.zeros_like(img)
    draw(layer)
    if mask is not None:
        layer *= mask
    img += layer


Box = tuple  # (x0, y0, x1, y1) in units of the image width, before the patient's rotation


def _ellipse_box(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> Box:
    """Axis-aligned bounds of an ellipse with semi-axes (ax, ay) rotated by ``angle`` degrees."""
    t = np.deg2rad(angle)
    hx, hy = np.hypot(ax * np.cos(t), ay * np.sin(t)), np.hypot(ax * np.sin(t), ay * np.cos(t))
    return (cx - hx, cy - hy, cx + hx, cy + hy)


def _clip(box: Box, within: Box) -> Box | None:
    x0, y0 = max(box[0], within[0]), max(box[1], within[1])
    x1, y1 = min(box[2], within[2]), min(box[3], within[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


class Anatomy:
    """Random per-patient geometry, in units of the image width."""

    def __init__(self, rng: np.random.Generator, view: str):
        self.view = view
        self.tilt = rng.normal(0, 2.0)
        self.body_w = rng.uniform(0.42, 0.47)
        self.lung_top = rng.uniform(0.13, 0.17)
        self.dome_y = rng.uniform(0.70, 0.75)
        self.lung_w = rng.uniform(0.23, 0.26)
        self.gap = rng.uniform(0.04, 0.05)
        mag = 1.08 if view == "AP" else 1.0  # AP views magnify the heart
        self.heart_w = rng.uniform(0.10, 0.115) * mag
        self.heart_h = rng.uniform(0.085, 0.10)
        self.heart_dx = rng.uniform(0.03, 0.045)
        self.rib_gap = rng.uniform(0.058, 0.064)
        self.flat = 1.0  # diaphragm dome height factor (Emphysema flattens)
        self.dome_shift = [0.0, 0.0]  # per-side dome shift (Atelectasis raises one)
        self.lung_density = 0.0  # added to both lungs (Emphysema darkens)

    def bounds(self, side: int) -> tuple[float, float]:
        """(inner, outer) x of the right (side=0, image left) or left (side=1) lung."""
        sgn = -1 if side == 0 else 1
        return 0.5 + sgn * self.gap, 0.5 + sgn * (self.gap + self.lung_w * (0.94 if side else 1.0))

    def lung_polygon(self, side: int) -> np.ndarray:
        """Outline of one lung field: rounded apex, lateral wall, costophrenic angle, dome."""
        inner, outer = self.bounds(side)
        top, bottom = self.lung_top, self.dome_y + self.dome_shift[side]
        t = np.linspace(0.0, 1.0, 28)
        # lateral wall: from the apex (near the inner edge) out and down to the costophrenic angle
        wx = inner + (outer - inner) * (0.35 + 0.65 * np.sin(np.pi / 2 * np.clip(t * 1.5, 0, 1)))
        wy = top + (bottom + 0.04 - top) * t ** 1.1
        # diaphragm dome: from the costophrenic angle back to the cardiophrenic angle, bulging up
        u = np.linspace(1.0, 0.0, 20)
        dx = inner + (outer - inner) * u
        dy = bottom + 0.04 * u - 0.05 * self.flat * np.sin(np.pi * u)
        apex = [(inner + (outer - inner) * 0.1, top + 0.04), (inner + (outer - inner) * 0.2, top + 0.005)]
        pts = apex + list(zip(wx, wy)) + list(zip(dx, dy))
        return np.array(pts, dtype=np.float64)

    def lung_box(self, x: float) -> Box:
        """Bounds of the lung field on the side of ``x``."""
        poly = self.lung_polygon(0 if x < 0.5 else 1)
        return (poly[:, 0].min(), poly[:, 1].min(), poly[:, 0].max(), poly[:, 1].max())

    def in_lung(self, box: Box) -> list[Box]:
        """``box`` clipped to its side's lung field (nothing if it falls outside)."""
        clipped = _clip(box, self.lung_box((box[0] + box[2]) / 2))
        return [clipped] if clipped else []


