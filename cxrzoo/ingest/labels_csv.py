"""Parse NIH's ``Data_Entry_2017*.csv`` (both the 2017 release and the v2020 revision)."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from cxrzoo.labels import UnknownLabelError, encode_findings
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)

REQUIRED = ("Image Index", "Finding Labels", "Patient ID")
OPTIONAL = {"Follow-up #": "follow_up", "View Position": "view_position", "Patient Age": "patient_age",
            "Patient Gender": "patient_gender"}


class LabelFileError(InputError):
    """The label CSV is missing columns or has an invalid row."""


def _age(value) -> int | None:
    """NIH ages are integers (v2020) or strings such as ``058Y`` (early releases)."""
    if pd.isna(value):
        return None
    s = str(value).strip().upper()
    digits = s.rstrip("YMD")
    try:
        n = int(digits)
    except ValueError:
        return None
    return n // 12 if s.endswith("M") else n


def read_labels_csv(path: str | Path) -> pd.DataFrame:
    """Read an NIH label file into one row per image.

    Parameters
    ----------
    path : path
        ``Data_Entry_2017.csv`` (2017 release: trailing empty column) or
        ``Data_Entry_2017_v2020.csv``; ``.gz`` is read transparently.

    Returns
    -------
    pandas.DataFrame
        Columns ``image_index`` (str), ``patient_id`` (int), ``labels``
        (list of 14 floats, NIH order), ``follow_up``, ``view_position``,
        ``patient_age``, ``patient_gender`` (where present).

    Raises
    ------
    LabelFileError
        On a missing column, a non-integer patient ID or an unknown label,
        naming the file and line.
    """
    path = Path(path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = df.loc[:, ~df.columns.str.startswith("Unnamed")]  # the 2017 release's trailing comma
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise LabelFileError(f"{path}: missing column(s) {missing}; is this NIH's Data_Entry_2017 CSV? "
                             f"header seen: {list(df.columns)}")
    labels, pids = [], []
    for i, (name, findings, pid) in enumerate(zip(df["Image Index"], df["Finding Labels"], df["Patient ID"])):
        where = f"{path}:{i + 2} ({name})"  # line 1 is the header
        try:
            labels.append(encode_findings(findings, where))
        except UnknownLabelError as e:  # the documented error of a bad label file (its message names the line)
            raise LabelFileError(str(e)) from None
        try:
            pids.append(int(pid))
        except ValueError:
            raise LabelFileError(f"{where}: Patient ID {pid!r} is not an integer") from None
    out = pd.DataFrame({"image_index": df["Image Index"].str.strip(), "patient_id": pids, "labels": labels})
    for col, new in OPTIONAL.items():
        if col in df.columns:
            out[new] = df[col]
    if "follow_up" in out:
        out["follow_up"] = pd.to_numeric(out["follow_up"], errors="coerce").fillna(-1).astype("int32")
    if "patient_age" in out:
        out["patient_age"] = out["patient_age"].map(_age).astype("Int32")
    dup = out["image_index"].duplicated()
    if dup.any():
        raise LabelFileError(f"{path}: image(s) listed twice, e.g. {out['image_index'][dup].iloc[0]!r}")
    log.debug("read %d label rows for %d patients from %s", len(out), out["patient_id"].nunique(), path)
    return out


def read_split_list(path: str | Path) -> set[str]:
    """Read an NIH split list (``train_val_list.txt`` / ``test_list.txt``): one file name per line."""
    names = {line.strip() for line in Path(path).read_text().splitlines() if line.strip()}
    if not names:
        raise LabelFileError(f"{path}: split list is empty")
    return names
