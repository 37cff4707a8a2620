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

from cxrzoo.models.weights import load_weights

CARD = "model.json"
WEIGHTS = "weights.safetensors"


class ModelDirError(ValueError):
    """A directory is not a cxrzoo model directory."""


def read_card(model_dir: str | Path) -> dict:
    """The card of the model directory ``model_dir``."""
    root = Path(model_dir)
    card = root / CARD
    if not card.is_file() or not (root / WEIGHTS).is_file():
        old = " (it holds weights.npz: written by cxrzoo before 0.2; retrain, or re-save with that version's " \
              "CXRModel.load(...).write().overwrite().save(...))" if (root / "weights.npz").exists() else ""
        raise ModelDirError(f"{root} is not a cxrzoo model directory (no {CARD} and {WEIGHTS}){old}; "
                            "train one with `cxrzoo train --out DIR`")
    return json.loads(card.read_text())


def read_weights(model_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """The engine-neutral weights of ``model_dir`` by node name (parsed without running code)."""
    return load_weights(Path(model_dir) / WEIGHTS)
