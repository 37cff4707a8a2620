"""Localisation by heatmaps, measured as NIH's ChestX-ray14 paper did, plus the pointing game.

Ground truth is NIH's ``BBox_List_2017.csv`` layout (``Image Index,Finding Label,Bbox [x,y,w,h]``, pixels
of the image as written; cxrzoo's synth writes one).  A heatmap covers the center crop of the image
(``fraction`` of each side, centered) and is compared in that image's pixels:

- **IoBB**: the heatmap is min-max normalised, upsampled bilinearly to the crop, thresholded at
  ``level`` (0.5), and the connected region holding its peak is boxed; a ground-truth box is *hit* at
  T(IoBB) when area(box ∩ predicted) / area(predicted) >= T, for T in 0.1, 0.25, 0.5.
- **Pointing game**: an (image, label) pair is a hit when the upsampled heatmap's peak falls in one
  of that label's boxes; the **image-centre baseline** points at the centre of every image.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from cxrzoo.errors import InputError

IOBB_THRESHOLDS = (0.1, 0.25, 0.5)
_ALIASES = {"Infiltrate": "Infiltration"}  # NIH's box list spells it so

Box = tuple[float, float, float, float]  # x, y, w, h in image pixels


class BoxListError(InputError):
    """A box list row cannot be read."""


def read_boxes(path: str | Path) -> dict[str, list[tuple[str, Box]]]:
    """``{image index: [(label, (x, y, w, h)), ...]}`` from a file in NIH's ``BBox_List_2017.csv`` layout."""
    out: dict[str, list[tuple[str, Box]]] = defaultdict(list)
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if not header or header[0].strip() != "Image Index":
            raise BoxListError(f"{path}: expected NIH's header 'Image Index,Finding Label,Bbox [x,y,w,h]'")
        for n, row in enumerate(rows, 2):
            if not any(c.strip() for c in row):
                continue
            try:
                x, y, w, h = (float(v) for v in row[2:6])
            except (ValueError, IndexError):
                raise BoxListError(f"{path} line {n}: need image, label and 4 numbers, got {row}") from None
            if w <= 0 or h <= 0:
                raise BoxListError(f"{path} line {n}: box of size {w}x{h}")
            out[row[0].strip()].append((_ALIASES.get(row[1].strip(), row[1].strip()), (x, y, w, h)))
    return dict(out)


def _upsampled(heatmap: np.ndarray, side: int) -> np.ndarray:
    """The (h, w) map min-max normalised to [0, 1] and resized to ``side``² (bilinear)."""
    m = np.asarray(heatmap, np.float32)
    if m.ndim != 2:
        raise InputError(f"a heatmap is (h, w), got shape {m.shape}")
    lo, hi = float(m.min()), float(m.max())
    m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR)


def _crop(image_side: float, fraction: float) -> tuple[float, float]:
    """(offset, side) of the centered crop the heatmap covers, in image pixels."""
    side = image_side * fraction
    return (image_side - side) / 2.0, side


def _peak(up: np.ndarray, image_side: float, fraction: float) -> tuple[float, float]:
    iy, ix = np.unravel_index(int(np.argmax(up)), up.shape)
    off, side = _crop(image_side, fraction)
    grid = up.shape[0]
    return off + (ix + 0.5) * side / grid, off + (iy + 0.5) * side / grid


def _region_box(up: np.ndarray, image_side: float, fraction: float, level: float) -> Box:
    mask = (up >= level).astype(np.uint8)
    _, comp = cv2.connectedComponents(mask, connectivity=8)
    iy, ix = np.unravel_index(int(np.argmax(up)), up.shape)
    ys, xs = np.nonzero(comp == comp[iy, ix])
    off, side = _crop(image_side, fraction)
    k = side / up.shape[0]
    return off + xs.min() * k, off + ys.min() * k, (xs.max() - xs.min() + 1) * k, (ys.max() - ys.min() + 1) * k


def peak_point(heatmap: np.ndarray, image_side: float, fraction: float, grid: int = 224) -> tuple[float, float]:
    """(x, y) in image pixels of the heatmap's maximum (upsampled to ``grid``² over the crop)."""
    return _peak(_upsampled(heatmap, grid), image_side, fraction)


def heatmap_box(heatmap: np.ndarray, image_side: float, fraction: float, level: float = 0.5,
                grid: int = 224) -> Box:
    """(x, y, w, h) in image pixels of the region above ``level`` that holds the heatmap's peak."""
    return _region_box(_upsampled(heatmap, grid), image_side, fraction, level)


def iobb(truth: Box, predicted: Box) -> float:
    """Intersection over the predicted box's area (NIH's IoBB)."""
    ix = max(0.0, min(truth[0] + truth[2], predicted[0] + predicted[2]) - max(truth[0], predicted[0]))
    iy = max(0.0, min(truth[1] + truth[3], predicted[1] + predicted[3]) - max(truth[1], predicted[1]))
    return ix * iy / (predicted[2] * predicted[3])


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


def localization(boxes: dict[str, list[tuple[str, Box]]], heatmaps: dict[str, np.ndarray], labels,
                 image_sides: dict[str, float], fraction: float, level: float = 0.5) -> dict[str, dict]:
    """Per label with boxes: the share of boxes hit at each T(IoBB), the pointing game and its baseline.

    Parameters
    ----------
    boxes : dict
        :func:`read_boxes` output.
    heatmaps : dict
        Image index → (labels, h, w) heatmaps of the images to measure (others are left out).
    labels : sequence of str
        The heatmaps' label order.
    image_sides : dict
        Image index → side in pixels of the image the boxes are in.
    fraction : float
        Share of each image side the heatmaps cover (the center crop).
    """
    index = {name: j for j, name in enumerate(labels)}
    stats: dict[str, dict] = {}
    for image, items in boxes.items():
        if image not in heatmaps:
            continue
        side = image_sides[image]
        by_label: dict[str, list[Box]] = defaultdict(list)
        for label, box in items:
            if label in index:
                by_label[label].append(box)
        for label, gts in by_label.items():
            s = stats.setdefault(label, {"boxes": 0, "images": 0, "iobb_hits": dict.fromkeys(IOBB_THRESHOLDS, 0),
                                         "pointing_hits": 0, "centre_hits": 0})
            up = _upsampled(heatmaps[image][index[label]], 224)  # once, for the box and the peak
            pred = _region_box(up, side, fraction, level)
            for gt in gts:
                s["boxes"] += 1
                v = iobb(gt, pred)
                for t in IOBB_THRESHOLDS:
                    s["iobb_hits"][t] += v >= t
            s["images"] += 1
            peak = _peak(up, side, fraction)
            s["pointing_hits"] += any(_inside(peak, gt) for gt in gts)
            s["centre_hits"] += any(_inside((side / 2, side / 2), gt) for gt in gts)
    out = {}
    for label in labels:
        if label not in stats:
            continue
        s = stats[label]
        out[label] = {"boxes": s["boxes"], "images": s["images"],
                      "iobb": {str(t): s["iobb_hits"][t] / s["boxes"] for t in IOBB_THRESHOLDS},
                      "pointing": s["pointing_hits"] / s["images"], "centre_baseline": s["centre_hits"] / s["images"]}
    return out


def localization_table(result: dict[str, dict]) -> str:
    """A fixed-width text table of :func:`localization`'s result."""
    head = f"{'label':<20}{'boxes':>6}" + "".join(f"{'IoBB>=' + str(t):>11}" for t in IOBB_THRESHOLDS)
    lines = [head + f"{'pointing':>10}{'centre':>8}"]
    for label, r in result.items():
        lines.append(f"{label:<20}{r['boxes']:>6}" + "".join(f"{r['iobb'][str(t)]:>11.3f}" for t in IOBB_THRESHOLDS)
                     + f"{r['pointing']:>10.3f}{r['centre_baseline']:>8.3f}")
    return "\n".join(lines)
