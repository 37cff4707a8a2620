"""``cxrzoo predict``: score image files with an exported IR, without Spark (OpenVINO only).

Each file is decoded as ingest does, scored, and given its findings (the labels at or above the
operating thresholds the IR's card carries); with ``heatmaps_dir`` an overlay PNG is written per
finding (or, without findings, for the most probable label).  A file that cannot be read or decoded
gets an error and no scores; the others are scored.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxrzoo.heatmap import overlay
from cxrzoo.ingest.decode import ImageDecodeError, decode_image
from cxrzoo.score.runtime import load_scorer
from cxrzoo.thresholds import findings as findings_of

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One file's scores (or its error)."""

    path: str
    probabilities: dict[str, float] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    overlays: list[str] = field(default_factory=list)
    error: str | None = None


def predict_files(paths: list[str], ir_dir: str, heatmaps_dir: str | None = None, batch: int = 16
                  ) -> list[Prediction]:
    """Score ``paths`` with the IR at ``ir_dir``; write overlays to ``heatmaps_dir`` when given."""
    scorer = load_scorer(ir_dir, heatmaps=heatmaps_dir is not None)
    card, labels, size = scorer.card, scorer.labels, scorer.image_size
    thresholds = card.get("thresholds") or {}
    out = [Prediction(str(p)) for p in paths]
    images: dict[int, np.ndarray] = {}
    for i, p in enumerate(out):
        try:
            images[i] = decode_image(Path(p.path).read_bytes(), size, name=Path(p.path).name)[0]
        except (OSError, ImageDecodeError) as e:
            p.error = f"{p.path}: {e}"
    order = sorted(images)
    for start in range(0, len(order), batch):
        ids = order[start:start + batch]
        probs, heat = scorer.infer_with_heatmaps(np.stack([images[i] for i in ids]))
        found = findings_of(probs, labels, thresholds) if thresholds else [[] for _ in ids]
        for k, i in enumerate(ids):
            p = out[i]
            p.probabilities = {name: float(v) for name, v in zip(labels, probs[k])}
            p.findings = found[k]
            if heat is not None:
                p.overlays = _overlays(p, heat[k], labels, card, Path(heatmaps_dir))
    return out


def _overlays(p: Prediction, heat: np.ndarray, labels: list[str], card: dict, out_dir: Path) -> list[str]:
    """One overlay PNG per finding (or for the most probable label) over the file at full resolution."""
    full = decode_image(Path(p.path).read_bytes(), name=Path(p.path).name)[0]
    fraction = card["heatmaps"]["covers"]["fraction"]
    show = p.findings or [max(p.probabilities, key=p.probabilities.get)]
    written = []
    for name in show:
        target = out_dir / f"{Path(p.path).stem}_{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        overlay(full, heat[labels.index(name)], fraction=fraction, path=target)
        written.append(str(target))
    return written


def findings_table(p: Prediction, thresholds: dict) -> str:
    """A text table of one prediction: every label's probability, its threshold and whether it is a finding."""
    if p.error:
        return f"{p.path}: error: {p.error}"
    lines = [f"{p.path}: findings: {', '.join(p.findings) if p.findings else 'none'}",
             f"  {'label':<20}{'probability':>12}{'threshold':>11}  finding"]
    for name, v in p.probabilities.items():
        t = (thresholds.get(name) or {}).get("threshold")
        lines.append(f"  {name:<20}{v:>12.4f}{(f'{t:11.4f}' if t is not None else '        n/a')}  "
                     f"{'yes' if name in p.findings else ''}")
    lines += [f"  overlay: {o}" for o in p.overlays]
    return "\n".join(lines)
