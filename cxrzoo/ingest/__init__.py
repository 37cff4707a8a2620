"""Ingest: label files (NIH, CheXpert, MIMIC-CXR) and images (PNG, JPEG, DICOM) into Spark DataFrames."""
from cxrzoo.ingest.decode import ImageDecodeError, decode_gray
from cxrzoo.ingest.labels_csv import LabelFileError, read_labels_csv, read_split_list
from cxrzoo.ingest.reader import IngestReport, image_files, read_images, read_nih, read_nih_with_report
from cxrzoo.ingest.sources import (read_chexpert, read_chexpert_with_report, read_mimic_cxr,
                                   read_mimic_cxr_with_report)

__all__ = ["ImageDecodeError", "IngestReport", "LabelFileError", "decode_gray", "image_files", "read_chexpert",
           "read_chexpert_with_report", "read_images", "read_labels_csv", "read_mimic_cxr",
           "read_mimic_cxr_with_report", "read_nih", "read_nih_with_report", "read_split_list"]
