"""``export_openvino``: a trained model directory → an OpenVINO IR directory with a model card."""
from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import openvino as ov

from cxrzoo import __version__
from cxrzoo.export.graph import build_openvino_model
from cxrzoo.export.precision import (CALIBRATION_IMAGES, PRECISIONS, PrecisionRefusedError, check_precision,
                                     cpu_supports_bf16, quantize_int8, read_labelled_images)
from cxrzoo.models import create_spec
from cxrzoo.atomic import local_path, replace_with_local_dir
from cxrzoo.models import irdir
from cxrzoo.models.cards import trained_card
from cxrzoo.models.modeldir import read_card, read_weights
from cxrzoo.models.spec import count_params
from cxrzoo.normalization import NORMALIZATIONS
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)


def export_openvino(model_dir: str | os.PathLike, out_dir: str | os.PathLike, image_size: int | None = None,
                    normalization: str | None = None, metrics: dict | None = None, precision: str = "fp32",
                    calibration: str | os.PathLike | None = None, check: str | os.PathLike | None = None,
                    heatmaps: bool = True) -> Path:
    """Export a ``CXRModel`` directory to OpenVINO IR.

    Needs neither Spark nor a training engine: it reads the model directory's card and engine-neutral
    weights (:mod:`cxrzoo.models.modeldir`) and, for a reduced precision, ingested Parquet with pyarrow.

    Parameters
    ----------
    model_dir : path
        Written by ``CXRModel.save``.
    out_dir : path or URI
        Created (or replaced) atomically: ``model.xml``, ``model.bin``, ``cxrzoo.json``, ``card.toml``; a
        Hadoop URI (``hdfs://…``) is built locally and uploaded (a SparkSession must be running).
    image_size : int, optional
        Side of the gray uint8 images the IR takes; default: the ingest size recorded at training.
        The graph center-crops to the network input.
    normalization : {"caffe", "imagenet"}, optional
        Default: the normalization recorded at training.
    metrics : dict, optional
        Training/evaluation metrics to record in the model card.
    precision : {"fp32", "bf16", "int8"}
        ``bf16``: the FP32 IR, run with OpenVINO's BF16 hint (refused where the CPU has no native BF16);
        ``int8``: NNCF post-training quantization with ``calibration``.  Either is scored against FP32
        on ``check`` and refused (:class:`PrecisionRefusedError`) if the mean AUC drops by more than 0.005.
    calibration : path, optional
        Ingested Parquet of training images; a seeded subset of 300 calibrates INT8.
    check : path, optional
        Ingested Parquet of labelled images (e.g. the test split) for the AUC comparison; default
        ``calibration``.
    heatmaps : bool
        Add the class activation maps as a second output, ``heatmaps`` (N, labels, h, w) float16, its
        shape and layer in the card (see :mod:`cxrzoo.export.graph`).

    Returns
    -------
    pathlib.Path or str
        ``out_dir`` (a Path for a local directory).
    """
    model_dir = Path(model_dir)
    info = read_card(model_dir)
    spec = create_spec(info["model"], num_classes=len(info["labels"]), dropout=info.get("dropout", 0.0),
                       input_size=info["input_size"])
    image_size = int(image_size or info.get("image_size", 256))
    normalization = normalization or info.get("normalization", "caffe")
    mean, std = NORMALIZATIONS[normalization]
    model = build_openvino_model(spec, read_weights(model_dir), image_size, mean, std, heatmaps=heatmaps)
    model, checked = _reduce(model, precision, image_size, info["labels"], calibration, check)
    cam = _heatmap_card(model, spec, image_size)

    def build(tmp: Path) -> None:
        card = {
            "cxrzoo_version": __version__,
            "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": info["model"],
            "labels": info["labels"],
            "precision": precision,
            "runtime": {"device": "CPU", "inference_precision_hint": "bf16" if precision == "bf16" else "f32"},
            "precision_check": checked.as_dict() if checked is not None else None,
            "input": {"name": "image", "dtype": "uint8", "shape": [-1, image_size, image_size],
                      "layout": "NHW", "color": "gray"},
            "preprocessing": {"center_crop": spec.input_size, "channels": 3, "normalization": normalization,
                              "mean": list(mean), "std": list(std), "inside_graph": True},
            "output": {"name": "probabilities", "activation": "sigmoid"},
            "heatmaps": cam,
            "metrics": metrics or {},
            # per label, chosen on the validation set at training (None: no decision for that label)
            "thresholds": info.get("thresholds") or {},
        }
        facts = trained_card(info["model"], spec.input_size, normalization, image_size, count_params(spec),
                             engine=info.get("engine"), metrics=metrics, precision=precision)
        irdir.write(tmp, lambda xml: ov.save_model(model, str(xml), compress_to_fp16=False), card, facts)

    from pyspark import SparkContext

    out = replace_with_local_dir(out_dir, build, SparkContext._active_spark_context)  # local, or any Hadoop URI
    log.debug("exported %s to %s (%s)", model_dir, out, precision)
    return Path(out) if local_path(out) is not None else out


def _heatmap_card(model: ov.Model, spec, image_size: int) -> dict | None:
    """The card's ``heatmaps`` entry: output name, shape, dtype, layer and where the maps sit in the image."""
    from cxrzoo.export.graph import cam_layers

    names = [n for o in model.outputs for n in o.get_names()]
    if "heatmaps" not in names:
        return None
    shape = model.output("heatmaps").get_partial_shape()
    crop = spec.input_size
    return {"name": "heatmaps", "dtype": "float16", "layout": "NLHW",
            "shape": [-1] + [int(shape[i].get_length()) for i in (1, 2, 3)],
            "method": "CAM: the last feature map weighted by the classifier, plus its bias (the mean of a map is "
                      "the label's logit)", "feature_layer": cam_layers(spec)[0],
            # the maps cover the center crop of the image: this share of each side, centered
            "covers": {"crop": crop, "image_size": image_size, "fraction": crop / image_size}}


def _reduce(model: ov.Model, precision: str, size: int, labels: list[str], calibration, check):
    """The model to save for ``precision`` and its AUC check against FP32 (None for fp32)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return model, None
    if precision == "bf16" and not cpu_supports_bf16():
        raise PrecisionRefusedError("this CPU has no native BF16 (AVX512_BF16 or AMX): OpenVINO would compute in "
                                    "FP32 anyway; export fp32 (or int8)")
    if precision == "int8" and calibration is None:
        raise InputError("int8 needs calibration images: --calibration PARQUET (ingested training data; "
                         f"{CALIBRATION_IMAGES} are drawn)")
    data = check or calibration
    if data is None:
        raise InputError(f"{precision} is checked against fp32 on labelled images: give --check PARQUET "
                         "(e.g. the ingested test split)")
    reduced = model
    if precision == "int8":
        calib, _ = read_labelled_images(calibration, size, limit=CALIBRATION_IMAGES)
        reduced = quantize_int8(model.clone(), calib)
    x, y = read_labelled_images(data, size, label_names=labels)
    return reduced, check_precision(model, reduced, precision, x, y, labels)
