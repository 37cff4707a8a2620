"""The 14 ChestX-ray14 pathology labels and their multi-hot encoding."""
from __future__ import annotations

from typing import Sequence

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


class UnknownLabelError(ValueError):
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
