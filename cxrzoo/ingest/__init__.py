"""Ingest: label files (NIH, CheXpert, MIMIC-CXR) and images (PNG, JPEG, DICOM) into Spark DataFrames.

The public names are imported lazily, so that the source registry (:mod:`cxrzoo.ingest.registry`, which the
command line's parser reads) imports neither Spark nor the decoders.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ImageDecodeError": "cxrzoo.ingest.decode", "decode_gray": "cxrzoo.ingest.decode",
    "LabelFileError": "cxrzoo.ingest.labels_csv", "read_labels_csv": "cxrzoo.ingest.labels_csv",
    "read_split_list": "cxrzoo.ingest.labels_csv",
    "IngestReport": "cxrzoo.ingest.reader", "image_files": "cxrzoo.ingest.reader",
    "read_images": "cxrzoo.ingest.reader", "read_nih": "cxrzoo.ingest.reader",
    "read_nih_with_report": "cxrzoo.ingest.reader",
    "read_chexpert": "cxrzoo.ingest.sources", "read_chexpert_with_report": "cxrzoo.ingest.sources",
    "read_mimic_cxr": "cxrzoo.ingest.sources", "read_mimic_cxr_with_report": "cxrzoo.ingest.sources",
    "ingest": "cxrzoo.ingest.job", "get_source": "cxrzoo.ingest.registry", "source_names": "cxrzoo.ingest.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cxrzoo.ingest' has no attribute {name!r}")
