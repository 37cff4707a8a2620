"""``export_openvino``: a trained model directory → an OpenVINO IR directory with a model card."""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import openvino as ov

from cxrzoo import __version__
from cxrzoo.export.graph import build_openvino_model
from cxrzoo.models import create_spec
from cxrzoo.params import NORMALIZATIONS
from cxrzoo.train.persist import ModelDirError, load_weights

log = logging.getLogger(__name__)
CARD = "cxrzoo.json"
XML = "model.xml"


def export_openvino(model_dir: str | os.PathLike, out_dir: str | os.PathLike, image_size: int | None = None,
                    normalization: str | None = None, metrics: dict | None = None) -> Path:
    """Export a ``CXRModel`` directory to OpenVINO IR.

    Needs neither Spark nor BigDL: it reads ``model.json`` and ``weights.npz``.

    Parameters
    ----------
    model_dir : path
        Written by ``CXRModel.save``.
    out_dir : path
        Created (or replaced) atomically: ``model.xml``, ``model.bin``, ``cxrzoo.json``.
    image_size : int, optional
        Side of the gray uint8 images the IR takes; default: the ingest size recorded at training.
        The graph center-crops to the network input.
    normalization : {"caffe", "imagenet"}, optional
        Default: the normalization recorded at training.
    metrics : dict, optional
        Training/evaluation metrics to record in the model card.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    model_dir, out = Path(model_dir), Path(out_dir)
    card_in = model_dir / "model.json"
    if not card_in.exists() or not (model_dir / "weights.npz").exists():
        raise ModelDirError(f"{model_dir} is not a cxrzoo model directory (no model.json/weights.npz)")
    info = json.loads(card_in.read_text())
    spec = create_spec(info["model"], dropout=info.get("dropout", 0.0), input_size=info["input_size"])
    image_size = int(image_size or info.get("image_size", 256))
    normalization = normalization or info.get("normalization", "caffe")
    mean, std = NORMALIZATIONS[normalization]
    model = build_openvino_model(spec, load_weights(model_dir / "weights.npz"), image_size, mean, std)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        ov.save_model(model, str(tmp / XML), compress_to_fp16=False)
        card = {
            "format": "cxrzoo-openvino/1",
            "cxrzoo_version": __version__,
            "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": info["model"],
            "labels": info["labels"],
            "precision": "fp32",
            "input": {"name": "image", "dtype": "uint8", "shape": [-1, image_size, image_size],
                      "layout": "NHW", "color": "gray"},
            "preprocessing": {"center_crop": spec.input_size, "channels": 3, "normalization": normalization,
                              "mean": list(mean), "std": list(std), "inside_graph": True},
            "output": {"name": "probabilities", "activation": "sigmoid"},
            "metrics": metrics or {},
            "thresholds": {name: 0.5 for name in info["labels"]},
        }
        (tmp / CARD).write_text(json.dumps(card, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s to %s", model_dir, out)
    return out
