"""The trained-model directory's engine-neutral part: its card and weights, readable without any engine.

Layout of a directory written by ``CXRModel.save``:

- ``model.json``: the card (model name, input size and channels, labels, normalization, ingest size,
  the engine that trained it and the name of that engine's own artifact, training history);
- ``weights.safetensors``: every parameter and batch-norm statistic, keyed ``<node>.<kind>`` by NetSpec
  node name (torchvision's state-dict names for the registry's backbones);
- the engine's own artifact (a name the engine chooses), read only by that engine;
- ``metadata/``: the Spark ML params, as ``DefaultParamsWriter`` writes them.

Evaluation without the engine, export and scoring read only the card and the weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cxrzoo.models.weights import CheckpointFormatError, load_weights

CARD = "model.json"
WEIGHTS = "weights.safetensors"
FORMAT = "cxrzoo-model/1"  # the card's "format": the layout this version writes and reads
REQUIRED = ("model", "input_size", "labels")  # the card's keys without a default
_DAMAGED = "the model directory is damaged; retrain, or copy it again from where it was written"


class ModelDirError(ValueError):
    """A directory is not a cxrzoo model directory, or one this version cannot read."""


def read_card(model_dir: str | Path) -> dict:
    """The card of the model directory ``model_dir``.

    Raises
    ------
    ModelDirError
        When the directory lacks the card or the weights (naming an exported IR, or a layout of cxrzoo before
        0.2, for what they are), the card is not a JSON object, is of another format than :data:`FORMAT` or
        lacks a key of :data:`REQUIRED`; the message names the file and the fix.
    """
    root = Path(model_dir)
    card = root / CARD
    if not card.is_file() or not (root / WEIGHTS).is_file():
        from cxrzoo.irformat import CARD as IR_CARD, XML

        if (root / IR_CARD).is_file() and (root / XML).is_file():
            raise ModelDirError(f"{root} is an exported OpenVINO IR, not a model directory of `cxrzoo train`; give "
                                "the directory it was exported from (`cxrzoo score` and `predict` take the IR)")
        old = " (it holds weights.npz: written by cxrzoo before 0.2; retrain, or re-save with that version's " \
              "CXRModel.load(...).write().overwrite().save(...))" if (root / "weights.npz").exists() else ""
        raise ModelDirError(f"{root} is not a cxrzoo model directory (no {CARD} and {WEIGHTS}){old}; "
                            "train one with `cxrzoo train --out DIR`")
    info = _parse(card)
    if info.get("format") != FORMAT:
        raise ModelDirError(f"{root} was written by another version of cxrzoo (format {info.get('format') or 'none'}; "
                            f"this version reads {FORMAT}); retrain it, or re-save it with the version that wrote it")
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise ModelDirError(f"{card} lacks {', '.join(missing)}: written by another version of cxrzoo or edited; "
                            "retrain it, or restore the file")
    return info


def _parse(card: Path) -> dict:
    """``card`` read as a JSON object (a damaged or binary file is a :class:`ModelDirError` naming it)."""
    try:
        info = json.loads(card.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ModelDirError(f"{card} is not a JSON text file (binary content at byte {e.start}): {_DAMAGED}") from None
    except json.JSONDecodeError as e:
        raise ModelDirError(f"{card} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): "
                            f"{_DAMAGED}") from None
    if not isinstance(info, dict):
        raise ModelDirError(f"{card} holds a JSON {type(info).__name__}, not the card's object: {_DAMAGED}")
    return info


def read_weights(model_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """The engine-neutral weights of ``model_dir`` by node name (parsed without running code).

    Raises
    ------
    ModelDirError
        When the weights file is damaged (not safetensors, truncated, inconsistent).
    """
    path = Path(model_dir) / WEIGHTS
    try:
        return load_weights(path)
    except CheckpointFormatError as e:
        raise ModelDirError(f"{e}: {_DAMAGED}") from e
