"""cxrzoo: a Spark-native chest X-ray model zoo (distributed training on Spark, OpenVINO scoring).

The public API is imported lazily so that ``import cxrzoo`` stays cheap and does
not start Spark.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "get_spark": "cxrzoo.session",
    "read_nih": "cxrzoo.ingest",
    "read_images": "cxrzoo.ingest",
    "read_chexpert": "cxrzoo.ingest",
    "read_mimic_cxr": "cxrzoo.ingest",
    "CXRPreprocessor": "cxrzoo.preprocess",
    "CXREstimator": "cxrzoo.train",
    "CXRModel": "cxrzoo.train",
    "evaluate_auc": "cxrzoo.evaluate",
    "export_openvino": "cxrzoo.export",
    "OpenVINOScorer": "cxrzoo.score",
    "LABELS": "cxrzoo.labels",
    "ALL_LABELS": "cxrzoo.labels",
    "list_models": "cxrzoo.models",
    "create_spec": "cxrzoo.models",
    "create_model": "cxrzoo.networks",
    "spark_conf": "cxrzoo.session",
    "SparkConfigError": "cxrzoo.sparkconf",
    "split_by_patient": "cxrzoo.splits",
    "check_disjoint_patients": "cxrzoo.splits",
    "PatientLeakError": "cxrzoo.splits",
    "overlay": "cxrzoo.heatmap",
    "register_functions": "cxrzoo.score.sql",
    "pack": "cxrzoo.pack",
    "CXRZooError": "cxrzoo.errors",
    "InputError": "cxrzoo.errors",
    "JobFailedError": "cxrzoo.errors",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cxrzoo' has no attribute {name!r}")
