"""Render a plausible chest radiograph phantom with visible, label-specific signs.

The image is an attenuation map (bright = dense, as on a radiograph): a torso of
soft tissue, two air-filled lung fields, mediastinum and spine, a heart shadow,
diaphragm domes, posterior ribs and clavicles, exposure variation and noise.
Each of the 14 findings adds its own sign at a random strength and position
(see :data:`SIGNS`), so a CNN can learn them but not perfectly.  Anatomy is
drawn at up to 512² and upscaled; noise is added at full size.
"""
from __future__ import annotations

import cv2
import numpy as np

from cxrzoo.synth.draw import Anatomy, Box, _add_drawing, _ellipse, _ellipse_box, _pt
from cxrzoo.synth.signs import GEOMETRY, SIGNS
from cxrzoo.errors import InputError

WORK = 512  # drawing resolution; larger outputs are upscaled


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


def render(findings: str, size: int, seed: int, view: str = "PA") -> np.ndarray:
    """Render one phantom radiograph (see :func:`render_with_boxes`); ``(size, size)`` uint8."""
    return render_with_boxes(findings, size, seed, view)[0]


def _rotated(box: Box, m: np.ndarray, r: int, size: int) -> tuple[float, float, float, float]:
    """(x, y, w, h) in pixels of the written image: the box's corners through the rotation ``m``, bounded."""
    x0, y0, x1, y1 = (v * r for v in box)
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]]) @ m.T
    lo, hi = np.clip(corners.min(0), 0, r), np.clip(corners.max(0), 0, r)
    k = size / r
    return (float(lo[0] * k), float(lo[1] * k), float((hi[0] - lo[0]) * k), float((hi[1] - lo[1]) * k))


def render_with_boxes(findings: str, size: int, seed: int, view: str = "PA"
                      ) -> tuple[np.ndarray, list[tuple[str, float, float, float, float]]]:
    """Render one phantom radiograph and say where its localised signs are.

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
    image : numpy.ndarray
        ``(size, size)`` uint8 gray image.
    boxes : list of (label, x, y, w, h)
        One box per drawn sign, in pixels of the image (after the patient's rotation); diffuse signs
        (Edema, Emphysema, Fibrosis, Pleural_Thickening) have none, as in NIH's box list.
    """
    if size < 16:
        raise InputError(f"size must be >= 16, got {size}")
    rng = np.random.default_rng(seed)
    names = [n for n in findings.split("|") if n in SIGNS or n in GEOMETRY]
    strength = {n: float(rng.uniform(0.5, 1.0)) for n in names}
    a = Anatomy(rng, view)
    for n in names:
        if n in GEOMETRY:
            GEOMETRY[n](a, rng, strength[n])
    r = min(size, WORK)
    img, lungs = _draw_base(a, rng, r)
    boxes: list[tuple[str, Box]] = []
    if "Cardiomegaly" in names:
        boxes.append(("Cardiomegaly", _ellipse_box(0.5 + a.heart_dx, a.dome_y - a.heart_h * 0.85, a.heart_w,
                                                   a.heart_h, -10)))
    for n in names:
        if n in SIGNS:
            boxes += [(n, b) for b in SIGNS[n](img, lungs, a, rng, strength[n])]
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
    return cv2.convertScaleAbs(img), [(n, *_rotated(b, m, r, size)) for n, b in boxes]
