"""Render a plausible chest radiograph phantom with visible, label-specific signs.

The image is an attenuation map (bright = dense, as on a radiograph): a torso of
soft tissue, two air-filled lung fields, mediastinum and spine, a heart shadow,
diaphragm domes, posterior ribs and clavicles, exposure variation and noise.
Each of the 14 findings adds its own sign at a random strength and position
(see :data:`SIGNS`), so a CNN can learn them but not perfectly.  Anatomy is
drawn at up to 512² and upscaled; noise is added at full size.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

WORK = 512  # drawing resolution; larger outputs are upscaled


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


def _draw_base(a: Anatomy, rng: np.random.Generator, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (image, lung_mask) at r×r."""
    img = np.full((r, r), 0.05, np.float32)
    # torso, shoulders and neck (soft tissue), abdomen below the domes
    _ellipse(img, 0.5, 0.60, a.body_w, 0.56, 0.50)
    _ellipse(img, 0.5, 0.06, 0.08, 0.10, 0.48)
    for sgn in (-1, 1):
        _ellipse(img, 0.5 + sgn * 0.36, 0.16, 0.15, 0.07, 0.47, angle=sgn * 18)
    # lungs
    lungs = np.zeros((r, r), np.float32)
    for side in (0, 1):
        cv2.fillPoly(lungs, [(a.lung_polygon(side) * r).astype(np.int32)], 1.0, cv2.LINE_AA)
    lungs = cv2.GaussianBlur(lungs, (7, 7), 0)
    img -= lungs * (0.30 + a.lung_density)
    # vascular markings: faint lines branching from the hila
    th = max(1, r // 256)

    def vessels(layer: np.ndarray) -> None:
        for side in (0, 1):
            sgn = -1 if side == 0 else 1
            hx, hy = 0.5 + sgn * (a.gap + 0.03), 0.45
            for _ in range(12):
                ang = rng.uniform(-1.3, 1.3) + (np.pi if side == 0 else 0.0)
                ln = rng.uniform(0.08, 0.18)
                cv2.line(layer, _pt(hx, hy, r), _pt(hx + np.cos(ang) * ln, hy + np.sin(ang) * ln * 1.2, r),
                         0.05, th, cv2.LINE_AA)

    _add_drawing(img, vessels, lungs)
    # spine and mediastinum (overwrite: dense structures)
    cv2.rectangle(img, _pt(0.5 - 0.03, 0.0, r), _pt(0.5 + 0.03, 1.0, r), 0.60, -1)
    _ellipse(img, 0.5, 0.33, a.gap * 0.95, 0.15, 0.56)
    # heart (image right = patient's left), lower mediastinum over the medial lung bases
    _ellipse(img, 0.5 + a.heart_dx, a.dome_y - a.heart_h * 0.85, a.heart_w, a.heart_h, 0.58, angle=-10)

    def bones(layer: np.ndarray) -> None:
        tb = max(1, r // 120)
        for i in range(9):  # posterior rib arcs
            y = a.lung_top + 0.02 + i * a.rib_gap
            for side, sgn in ((0, -1), (1, 1)):
                inner, outer = a.bounds(side)
                c = _pt(0.5 + sgn * 0.02, y + 0.03, r)
                axes = (int(abs(outer - 0.5) * r), int(0.05 * r))
                start, end = (180, 290) if sgn < 0 else (250, 360)
                cv2.ellipse(layer, c, axes, -sgn * 6, start, end, 0.09, tb, cv2.LINE_AA)
        for sgn in (-1, 1):  # clavicles
            cv2.line(layer, _pt(0.5 + sgn * 0.04, 0.17, r), _pt(0.5 + sgn * 0.27, 0.12, r), 0.12, tb + 2,
                     cv2.LINE_AA)
        if a.view == "AP":  # scapular edges project over the lungs on AP films
            for sgn in (-1, 1):
                cv2.ellipse(layer, _pt(0.5 + sgn * 0.31, 0.30, r), (int(0.05 * r), int(0.12 * r)), 0, 0, 360,
                            0.05, tb)

    _add_drawing(img, bones)
    return img, lungs


def _lung_point(a: Anatomy, rng: np.random.Generator, side: int, ylo: float, yhi: float) -> tuple[float, float]:
    inner, outer = a.bounds(side)
    x = inner + (outer - inner) * rng.uniform(0.3, 0.8)
    y = a.lung_top + (a.dome_y - a.lung_top) * rng.uniform(ylo, yhi)
    return x, y


# --- signs: each takes (img, lungs, anatomy, rng, strength in [0.5, 1]) ---

def _atelectasis(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.6, 0.85)
    _blurred_blob(img, x, y, 0.09, 0.016, 0.22 * s, 0.012, angle=rng.uniform(-20, 20), mask=lungs)


def _effusion(img, lungs, a, rng, s):
    for side in ((0,), (1,), (0, 1))[int(rng.integers(3))]:
        inner, outer = a.bounds(side)
        h = 0.04 + 0.06 * s  # fluid level rises with strength; blunts the costophrenic angle
        _blurred_blob(img, outer - (outer - inner) * 0.25, a.dome_y + 0.03, abs(outer - inner) * 0.55, h,
                      0.32 * s, 0.02, mask=lungs)


def _infiltration(img, lungs, a, rng, s):
    side = int(rng.integers(2))
    for _ in range(7):
        x, y = _lung_point(a, rng, side, 0.2, 0.9)
        _blurred_blob(img, x, y, rng.uniform(0.02, 0.035), rng.uniform(0.02, 0.035), 0.12 * s, 0.02, mask=lungs)


def _mass(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.2, 0.75)
    rad = rng.uniform(0.035, 0.055)
    _blurred_blob(img, x, y, rad, rad * rng.uniform(0.85, 1.15), 0.30 * s, 0.006)


def _nodule(img, lungs, a, rng, s):
    for _ in range(int(rng.integers(1, 4))):
        x, y = _lung_point(a, rng, int(rng.integers(2)), 0.1, 0.8)
        rad = rng.uniform(0.010, 0.017)
        _blurred_blob(img, x, y, rad, rad, 0.32 * s, 0.003)


def _pneumonia(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.45, 0.85)
    _blurred_blob(img, x, y, 0.07, 0.06, 0.20 * s, 0.03, mask=lungs)
    _blurred_blob(img, x, y, 0.03, 0.03, 0.10 * s, 0.02, mask=lungs)


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


def _consolidation(img, lungs, a, rng, s):
    x, y = _lung_point(a, rng, int(rng.integers(2)), 0.35, 0.75)
    r = img.shape[0]
    ys, xs, ox, oy = _roi(img, x, y, 0.09)
    layer = np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.float32)
    cv2.rectangle(layer, _pt(x - ox - 0.06, y - oy - 0.045, r), _pt(x - ox + 0.06, y - oy + 0.045, r),
                  0.28 * s, -1)
    img[ys, xs] += cv2.GaussianBlur(layer, (5, 5), 0) * lungs[ys, xs]


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


def _fibrosis(img, lungs, a, rng, s):
    r = img.shape[0]

    def net(layer: np.ndarray) -> None:  # reticular pattern in the lower, peripheral zones
        for _ in range(60):
            x, y = _lung_point(a, rng, int(rng.integers(2)), 0.5, 0.95)
            dx, dy = rng.uniform(-0.025, 0.025, size=2)
            cv2.line(layer, _pt(x, y, r), _pt(x + dx, y + dy, r), 0.10 * s, max(1, r // 256), cv2.LINE_AA)

    _add_drawing(img, net, lungs)


def _pleural_thickening(img, lungs, a, rng, s):
    r = img.shape[0]

    def rind(layer: np.ndarray) -> None:  # a pleural rind along the apex and lateral wall
        for side in ((0,), (1,), (0, 1))[int(rng.integers(3))]:
            poly = (a.lung_polygon(side) * r).astype(np.int32)
            cv2.polylines(layer, [poly[:22]], False, 0.20 * s, max(2, r // 80), cv2.LINE_AA)

    _add_drawing(img, rind, lungs)


def _hernia(img, lungs, a, rng, s):
    # hiatal hernia: a retrocardiac soft-tissue mass with a gas bubble and air-fluid level
    x, y = 0.5 + rng.uniform(-0.02, 0.02), a.dome_y - 0.05
    _blurred_blob(img, x, y, 0.05, 0.04, 0.12 * s, 0.005)
    _blurred_blob(img, x, y - 0.01, 0.035, 0.018, -0.30 * s, 0.004)


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


def render(findings: str, size: int, seed: int, view: str = "PA") -> np.ndarray:
    """Render one phantom radiograph.

    Parameters
    ----------
    findings : str
        NIH ``Finding Labels`` text, e.g. ``"Effusion|Mass"``.
    size : int
        Output side length in pixels (square), >= 16.
    seed : int
        Per-image seed; output is a pure function of the arguments.
    view : {"PA", "AP"}
        View position; AP magnifies the heart and shows the scapulae.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8 gray image.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    rng = np.random.default_rng(seed)
    names = [n for n in findings.split("|") if n in SIGNS or n in GEOMETRY]
    strength = {n: float(rng.uniform(0.5, 1.0)) for n in names}
    a = Anatomy(rng, view)
    for n in names:
        if n in GEOMETRY:
            GEOMETRY[n](a, rng, strength[n])
    r = min(size, WORK)
    img, lungs = _draw_base(a, rng, r)
    for n in names:
        if n in SIGNS:
            SIGNS[n](img, lungs, a, rng, strength[n])
    # patient rotation, exposure and detector response, all at drawing resolution
    m = cv2.getRotationMatrix2D((r / 2, r / 2), a.tilt, 1.0)
    img = cv2.warpAffine(img, m, (r, r), borderMode=cv2.BORDER_REPLICATE)
    gain, offset, gamma = rng.uniform(0.85, 1.15), rng.uniform(-0.04, 0.04), rng.uniform(0.8, 1.25)
    np.clip(img * gain + offset, 1e-3, 1.0, out=img)
    img = cv2.pow(img, gamma)
    img = cv2.GaussianBlur(img, (3, 3), 0) * 230.0 + 10.0
    # quantum noise, spatially correlated over ~2 px as after a detector's MTF
    img += cv2.resize(rng.standard_normal((r // 2, r // 2), dtype=np.float32), (r, r)) * 2.5
    if size != r:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.convertScaleAbs(img)
