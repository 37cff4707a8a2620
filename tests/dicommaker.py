"""Write DICOM radiographs for tests with pydicom: any photometric, bit depth and transfer syntax pydicom can
encode here (uncompressed, RLE, JPEG 2000), plus JPEG baseline wrapped from OpenCV's encoder."""
from __future__ import annotations

import io

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (CTImageStorage, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid)

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage


def dataset(arr: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
            signed: bool = False, transfer_syntax: str = ExplicitVRLittleEndian, patient_id: str = "P-0042",
            **attrs) -> Dataset:
    """A single-frame radiograph holding ``arr`` (uint8/uint16/int16) as its stored values.

    ``attrs`` are set on the dataset as given (``WindowCenter``, ``RescaleSlope``, ...).
    """
    bits_alloc = arr.dtype.itemsize * 8
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CR_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality, ds.ViewPosition = patient_id, "CR", "PA"
    ds.PixelSpacing = [0.139, 0.143]
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored = bits_alloc, bits_stored or bits_alloc
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, int(signed)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    if transfer_syntax == JPEGBaseline8Bit:
        ok, jpg = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok and arr.dtype == np.uint8
        ds.PixelData = encapsulate([jpg.tobytes()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
    elif transfer_syntax != ExplicitVRLittleEndian:
        if transfer_syntax in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2"):  # implicit VR / big endian
            ds.file_meta.TransferSyntaxUID = transfer_syntax
            if transfer_syntax == "1.2.840.10008.1.2.2":  # pydicom writes pixel bytes as given
                ds.PixelData = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(">"))).tobytes()
        else:
            ds.compress(transfer_syntax, arr, generate_instance_uid=False)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """The dataset as a Part 10 file (preamble, ``DICM``, file meta)."""
    buf = io.BytesIO()
    ts = ds.file_meta.TransferSyntaxUID
    if ts == "1.2.840.10008.1.2.2":  # big endian: pydicom writes it when asked explicitly
        ds.save_as(buf, implicit_vr=False, little_endian=False, enforce_file_format=True)
    else:
        ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def non_image() -> Dataset:
    """A CT-class object without pixel data (as a structured report or a plan would be)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.Modality, ds.PatientID = CTImageStorage, "SR", "X"
    return ds
