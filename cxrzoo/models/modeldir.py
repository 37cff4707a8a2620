"""The trained-model directory's engine-neutral part: its card and weights, readable without any engine.

Layout of a directory written by ``CXRModel.save``:

- ``model.json``: the card (model name, input size and channels, labels, normalization, ingest size,
  the engine that trained it and the name of that engine's own artifact, training history);
- ``weights.safetensors``: every parameter and batch-norm statistic, keyed ``<node>.<kind>`` by NetSpec
  node name (torchvision's state-dict names for the registry's backbones);
- the engine's own artifact (a name the engine chooses), read only by that engine;
- ``metadata/``: the Spark ML params, as ``DefaultParamsWriter`` writes them.

Evaluation without the engine, export and scoring read only the card and the weights. This module owns the
layout: its file names, format id, reading, validation and writing (:func:`write`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cxrzoo.errors import InputError
from cxrzoo.models.cards import CARD_FILE, CardError, check_card, dump_toml, read_json_card
from cxrzoo.models.weights import CheckpointFormatError, load_weights, save_weights

CARD = "model.json"
WEIGHTS = "weights.safetensors"
FORMAT = "cxrzoo-model/1"  # the card's "format": the layout this version writes and reads
REQUIRED = ("model", "input_size", "labels")  # the card's keys without a default
_DAMAGED = "the model directory is damaged; retrain, or copy it again from where it was written"


class ModelDirError(CardError):
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
        from cxrzoo.models import irdir

        if irdir.looks_like(root):
            raise ModelDirError(f"{root} is an exported OpenVINO IR, not a model directory of `cxrzoo train`; give "
                                "the directory it was exported from (`cxrzoo score` and `predict` take the IR)")
        old = " (it holds weights.npz: written by cxrzoo before 0.2; retrain, or re-save with that version's " \
              "CXRModel.load(...).write().overwrite().save(...))" if (root / "weights.npz").exists() else ""
        raise ModelDirError(f"{root} is not a cxrzoo model directory (no {CARD} and {WEIGHTS}){old}; "
                            "train one with `cxrzoo train --out DIR`")
    info = read_json_card(card, _DAMAGED, ModelDirError)
    check_card(info, card, ModelDirError, FORMAT, (), "retrain it, or re-save it with the version that wrote it")
    return check_card(info, card, ModelDirError, FORMAT, REQUIRED, "retrain it, or restore the file")


def looks_like(path: Path) -> bool:
    """Whether ``path`` holds this layout's two files (whatever their content)."""
    return (path / CARD).is_file() and (path / WEIGHTS).is_file()


def write(path: str | Path, weights: dict[str, dict[str, np.ndarray]], card: dict, facts: dict) -> None:
    """Write the engine-neutral part of a model directory into the existing local directory ``path``: the
    weights, the card (``card`` with this version's :data:`FORMAT`) and the human-readable ``card.toml``
    (``facts``, :func:`cxrzoo.models.cards.trained_card`). The caller writes the rest and swaps the directory in
    atomically (:mod:`cxrzoo.train.persist`)."""
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise InputError(f"a model card needs {', '.join(missing)}")
    save_weights(Path(path) / WEIGHTS, weights)
    Path(path, CARD).write_text(json.dumps({"format": FORMAT, **card}, indent=1) + "\n")
    Path(path, CARD_FILE).write_text(dump_toml(facts))


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
