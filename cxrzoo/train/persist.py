"""Save and load ``CXRModel`` directories, atomically.

Layout: ``metadata/`` (Spark ML params, as DefaultParamsWriter writes them),
``net.bigdl`` (the engine's own file), ``weights.npz`` (engine-neutral arrays by
node name, read by the exporter) and ``model.json`` (name, input size, labels).
The directory is written beside its target under a temporary name and renamed
into place, so a reader never sees a half-written model.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from cxrzoo.engine.base import get_engine
from cxrzoo.io import local_path
from cxrzoo.labels import LABELS


class ModelDirError(ValueError):
    """A directory is not a cxrzoo model directory."""


def _local(path: str) -> Path:
    local = local_path(path)
    if local is None:
        raise ValueError(f"model directories are local paths; got {path!r}")
    return Path(local)


def flatten_weights(weights: dict) -> dict[str, np.ndarray]:
    """``{node: {kind: array}}`` → ``{"node/kind": array}`` for ``np.savez``."""
    return {f"{node}/{kind}": arr for node, d in weights.items() for kind, arr in d.items()}


def load_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read ``weights.npz`` back into ``{node: {kind: array}}``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(Path(path), allow_pickle=False) as z:
        for key in z.files:
            node, kind = key.split("/", 1)
            out.setdefault(node, {})[kind] = z[key]
    return out


class CXRModelWriter(MLWriter):
    """Writes a CXRModel directory atomically."""

    def __init__(self, instance) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        """Save to ``path``; an existing directory is replaced only with ``.overwrite()``."""
        target = _local(path)
        if target.exists() and not self.shouldOverwrite:
            raise FileExistsError(f"{target} exists; use model.write().overwrite().save(path)")
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            self.saveImpl(str(tmp))
            if target.exists():
                old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def saveImpl(self, path: str) -> None:
        """Write the parts into ``path``."""
        m = self.instance
        Path(path).mkdir(parents=True)
        DefaultParamsWriter.saveMetadata(m, path, self.sc, extraMetadata={"inputSize": m.spec.input_size})
        m.backend.save(m.net, os.path.join(path, "net.bigdl"))
        np.savez(os.path.join(path, "weights.npz"), **flatten_weights(m.weights()))
        card = {"model": m.getModelName(), "input_size": m.spec.input_size, "channels": m.spec.in_channels,
                "labels": list(LABELS), "engine": m.getEngine(), "dropout": m.getDropout(),
                "image_size": m.getImageSize(), "normalization": m.getNormalization(),
                "history": getattr(m, "history", [])}
        Path(path, "model.json").write_text(json.dumps(card, indent=1) + "\n")
        from cxrzoo.train.curve import write_learning_curve

        write_learning_curve(card["history"], Path(path, "learning_curve.png"))


class CXRModelReader(MLReader):
    """Reads a CXRModel directory."""

    def __init__(self, cls) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        """Load the model at ``path``."""
        root = _local(path)
        if not (root / "metadata").is_dir() or not (root / "net.bigdl").exists():
            raise ModelDirError(f"{root} is not a cxrzoo model directory (no metadata/ or net.bigdl); "
                                "train one with `cxrzoo train --out DIR`")
        meta = DefaultParamsReader.loadMetadata(str(root), self.sc)
        model = self.cls()
        DefaultParamsReader.getAndSetParams(model, meta)
        spec = model._spec(int(meta["inputSize"]))
        engine = get_engine(model.getEngine())
        model.net, model.spec, model.backend = engine.load(str(root / "net.bigdl"), spec), spec, engine
        card = root / "model.json"
        model.history = json.loads(card.read_text()).get("history", []) if card.exists() else []
        return model
