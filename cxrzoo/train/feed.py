"""Training data for one epoch: an :class:`~cxrzoo.engine.base.EpochData` over a DataFrame.

With a preprocessor the chain runs per epoch over Arrow batches of gray images (the numba kernel,
randomness from (seed, epoch, image key)), so every epoch sees a different augmentation of the same
images; without one, precomputed feature arrays are reshaped to CHW.  The decoders below are what
the engines run in their Python workers, on the record batches they read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.rdd import RDD
from pyspark.sql import DataFrame

from cxrzoo.arrowutil import binary_rows, float_rows
from cxrzoo.engine.base import EpochData
from cxrzoo.preprocess.chain import ChainConfig, apply_chain
from cxrzoo.preprocess.sides import side_of
from cxrzoo.errors import InputError


@dataclass(frozen=True)
class ImageDecoder:
    """Record batch (key, gray image bytes, labels) → augmented (N, 3, crop, crop) and labels."""

    cfg: ChainConfig
    seed: int
    epoch: int

    def __call__(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        keys = [str(k) for k in batch.column(0).to_pylist()]
        flat = binary_rows(batch.column(1), "image")
        c = self.cfg.crop
        if not len(keys):
            return np.zeros((0, 3, c, c), np.float32), np.zeros((0, 0), np.float32)
        side = side_of(flat.shape[1])
        if side is None:
            raise InputError(f"image {keys[0]!r}: {flat.shape[1]} bytes is not a square gray image")
        x = apply_chain(flat.reshape(len(keys), side, side), keys, self.cfg, self.seed, self.epoch)
        return x, float_rows(batch.column(2), None, "labels")


@dataclass(frozen=True)
class FeatureDecoder:
    """Record batch (features list<float>, labels) → (N, C, S, S) and labels."""

    shape: tuple[int, int, int]

    def __call__(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        c, h, w = self.shape
        x = float_rows(batch.column(0), c * h * w, "features").reshape(-1, c, h, w)
        return x, float_rows(batch.column(1), None, "labels")


def augmented_data(df: DataFrame, image_col: str, key_col: str, label_col: str, cfg: ChainConfig, seed: int,
                   epoch: int) -> EpochData:
    """Epoch ``epoch`` of gray images of one size, augmented by ``cfg``: x (3, crop, crop), y the labels."""
    return EpochData(df.select(key_col, image_col, label_col), ImageDecoder(cfg, seed, epoch),
                     key=("images", id(df), epoch), rows_key=("images", id(df)))


def features_data(df: DataFrame, features_col: str, label_col: str, side: int, channels: int = 3) -> EpochData:
    """Flattened CHW feature arrays (non-null ``array<float>``) with their labels, the same every epoch."""
    return EpochData(df.select(features_col, label_col), FeatureDecoder((channels, side, side)),
                     key=("features", id(df)))


def augmented_rdd(df: DataFrame, image_col: str, key_col: str, label_col: str, cfg: ChainConfig, seed: int,
                  epoch: int) -> RDD:
    """``(x, y)`` pairs of :func:`augmented_data`."""
    return augmented_data(df, image_col, key_col, label_col, cfg, seed, epoch).pairs()


def features_rdd(df: DataFrame, features_col: str, label_col: str, side: int, channels: int = 3) -> RDD:
    """``(x, y)`` pairs of :func:`features_data`."""
    return features_data(df, features_col, label_col, side, channels).pairs()
