"""The exported model's directory: its layout, format id, reading, validation and writing.

Layout of a directory written by ``cxrzoo export`` (:func:`cxrzoo.export.export_openvino`):

- ``model.xml`` and ``model.bin``: the OpenVINO IR (uint8 gray images in; preprocessing, the network and the
  sigmoid inside the graph; the class activation maps as a second output when exported with them);
- ``cxrzoo.json``: the card the scorer reads (format, labels, input contract, precision, heatmaps, metrics,
  thresholds);
- ``card.toml``: the same facts for a person (:mod:`cxrzoo.models.cards`).

The export stage builds the graph and the scorer compiles it; the file names, the format id and the card's
checks are here, in ``models`` so that neither needs the other (and this module needs no OpenVINO).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from cxrzoo.models.cards import CARD_FILE, CardError, check_card, dump_toml, read_json_card

CARD = "cxrzoo.json"  # the model card: labels, input contract, precision, metrics, thresholds
XML = "model.xml"  # the OpenVINO IR (with model.bin beside it)
BIN = "model.bin"
FORMAT = "cxrzoo-openvino/1"  # the card's "format": the layout this version writes and reads
_AGAIN = "re-export it with `cxrzoo export --model MODEL_DIR --out IR_DIR`"


class NotAnIRDirError(CardError):
    """A directory is not an exported cxrzoo IR, or one this version cannot read."""


def _has_contract(card: dict) -> bool:
    """Whether ``card`` has what the scorer reads first: the labels and the input shape (N, S, S)."""
    shape = card.get("input", {}).get("shape") if isinstance(card.get("input"), dict) else None
    return "labels" in card and isinstance(shape, list) and len(shape) >= 2


def looks_like(path: Path) -> bool:
    """Whether ``path`` holds this layout's IR and card (whatever their content)."""
    return (path / XML).is_file() and (path / CARD).is_file()


def read_card(ir_dir: str | Path) -> dict:
    """The model card of an exported IR directory.

    Raises
    ------
    NotAnIRDirError
        When the directory lacks the IR or the card (naming a model directory of ``cxrzoo train`` for what it
        is), or the card is not a JSON object, is of another format than :data:`FORMAT` or lacks the labels
        or the input shape; the message names the file and the fix.
    """
    d = Path(ir_dir)
    if not (d / XML).exists() or not (d / CARD).exists():
        from cxrzoo.models import modeldir

        if modeldir.looks_like(d):
            raise NotAnIRDirError(f"{d} is a model directory written by `cxrzoo train`, not an exported IR; export it "
                                  f"first: `cxrzoo export --model {d} --out IR_DIR`")
        raise NotAnIRDirError(f"{d} is not an exported cxrzoo IR (need {XML} and {CARD}); "
                              "run `cxrzoo export --model MODEL_DIR --out IR_DIR`")
    card = d / CARD
    info = check_card(read_json_card(card, f"the IR is damaged; {_AGAIN}", NotAnIRDirError), card,
                      NotAnIRDirError, FORMAT, (), _AGAIN)
    if not _has_contract(info):
        raise NotAnIRDirError(f"{card} lacks the labels or the input shape: written by another version of cxrzoo "
                              f"or edited; {_AGAIN}")
    return info


def write(path: str | Path, save_model: Callable[[Path], None], card: dict, facts: dict) -> None:
    """Write an exported model into the existing local directory ``path``: ``save_model(path / XML)`` writes the
    IR, then the card (``card`` with this version's :data:`FORMAT`) and ``card.toml`` (``facts``). The caller
    swaps the directory in atomically (:mod:`cxrzoo.export.ir`)."""
    if not _has_contract(card):
        raise CardError("an IR card needs the labels and the input shape")
    save_model(Path(path) / XML)
    Path(path, CARD).write_text(json.dumps({"format": FORMAT, **card}, indent=1) + "\n")
    Path(path, CARD_FILE).write_text(dump_toml(facts))
