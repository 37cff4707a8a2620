"""Ingest: NIH label files and images into Spark DataFrames."""
from cxrzoo.ingest.decode import ImageDecodeError, decode_gray
from cxrzoo.ingest.labels_csv import LabelFileError, read_labels_csv, read_split_list
from cxrzoo.ingest.reader import IngestReport, image_files, read_images, read_nih, read_nih_with_report

__all__ = ["ImageDecodeError", "IngestReport", "LabelFileError", "decode_gray", "image_files", "read_images",
           "read_labels_csv", "read_nih", "read_nih_with_report", "read_split_list"]
