"""The 14 ChestX-ray14 pathology labels, the harmonised label space of every source, and their encodings.

Every ingested DataFrame carries ``labels`` and ``label_mask``, both ``array<float>`` over
:data:`ALL_LABELS`: NIH's 14 first (in NIH's order, so index ``i < 14`` is NIH's label ``i``), then the
findings CheXpert and MIMIC-CXR label and NIH does not (:data:`EXTRA_LABELS`).  ``label_mask`` is 1 where
the source states the label for that image and 0 where it does not (a label the source never annotates,
or an uncertain one under the ``ignore`` policy).  The mapping of each source is in ``docs/labels.md``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cxrzoo.errors import InputError

LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
NUM_LABELS = len(LABELS)
_INDEX = {name: i for i, name in enumerate(LABELS)}
EXTRA_LABELS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Lung Opacity",
    "Lung Lesion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)  # labelled by CheXpert and MIMIC-CXR (the CheXpert labeler), not by NIH
ALL_LABELS: tuple[str, ...] = LABELS + EXTRA_LABELS  # the harmonised label space of every ingested DataFrame
_ALL_INDEX = {name: i for i, name in enumerate(ALL_LABELS)}
NIH_MASK: tuple[float, ...] = (1.0,) * NUM_LABELS + (0.0,) * len(EXTRA_LABELS)  # NIH states only its 14


def label_indices(names: Sequence[str]) -> list[int]:
    """Positions of ``names`` in :data:`ALL_LABELS`.

    Raises
    ------
    UnknownLabelError
        For a name that is not a harmonised label, or a repeated one.
    """
    out = []
    for name in names:
        if name not in _ALL_INDEX:
            raise UnknownLabelError(f"unknown label {name!r}; the harmonised labels are {', '.join(ALL_LABELS)}")
        if _ALL_INDEX[name] in out:
            raise UnknownLabelError(f"label {name!r} is listed twice")
        out.append(_ALL_INDEX[name])
    if not out:
        raise UnknownLabelError("no labels chosen; name at least one of " + ", ".join(ALL_LABELS))
    return out


def harmonise_nih(vec: Sequence[float]) -> list[float]:
    """NIH's 14-float multi-hot vector widened to :data:`ALL_LABELS` (the extra labels 0, masked by
    :data:`NIH_MASK`)."""
    if len(vec) != NUM_LABELS:
        raise InputError(f"an NIH label vector has {NUM_LABELS} entries, got {len(vec)}")
    return [float(v) for v in vec] + [0.0] * len(EXTRA_LABELS)


class UnknownLabelError(InputError):
    """A ``Finding Labels`` cell names a label that is not one of the 14 NIH labels."""


def encode_findings(findings: str, where: str = "") -> list[float]:
    """Turn a ``|``-joined NIH ``Finding Labels`` cell into a 14-float multi-hot vector.

    Parameters
    ----------
    findings : str
        E.g. ``"Cardiomegaly|Effusion"`` or ``"No Finding"``.
    where : str
        Where the cell came from (file and row), used in the error message.

    Returns
    -------
    list of float
        1.0 at each named label, in :data:`LABELS` order; all zeros for ``No Finding``.

    Raises
    ------
    UnknownLabelError
        If a name is neither one of :data:`LABELS` nor ``No Finding``.
    """
    vec = [0.0] * NUM_LABELS
    for raw in str(findings).split("|"):
        name = raw.strip()
        if name == NO_FINDING or name == "":
            continue
        idx = _INDEX.get(name)
        if idx is None:
            raise UnknownLabelError(
                f"{where}: unknown finding label {name!r}; expected one of "
                f"{', '.join(LABELS)} or {NO_FINDING!r}"
            )
        vec[idx] = 1.0
    return vec


def decode_findings(vec: Sequence[float]) -> str:
    """Inverse of :func:`encode_findings`: a multi-hot vector back to NIH's cell text."""
    names = [LABELS[i] for i, v in enumerate(vec) if v >= 0.5]
    return "|".join(names) if names else NO_FINDING


def target_array(labels: Sequence[Sequence[float]], mask: Sequence[Sequence[float] | None] | None,
                 names: Sequence[str]) -> np.ndarray:
    """NumPy twin of :func:`cxrzoo.targets.target_column`: (N, len(names)) float32 of ``names`` picked from
    harmonised label rows, NaN where ``mask`` is 0 (a null mask row: all known; names that are not all harmonised
    labels are taken positionally).

    Raises
    ------
    ValueError
        For a label row too short for ``names``.
    """
    idx = label_indices(names) if all(n in _ALL_INDEX for n in names) else list(range(len(names)))
    out = np.full((len(labels), len(idx)), np.nan, np.float32)
    for r, row in enumerate(labels):
        if len(row) <= max(idx):
            raise InputError(f"label row {r} holds {len(row)} labels, fewer than the {max(idx) + 1} that {list(names)} "
                             "need in the harmonised layout (ALL_LABELS); re-ingest it with cxrzoo")
        m = mask[r] if mask is not None else None
        for c, i in enumerate(idx):
            if m is None or (i < len(m) and m[i] > 0):
                out[r, c] = row[i]
    return out
