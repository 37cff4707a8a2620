"""Training data for one epoch: an RDD of ``(x, y)`` numpy pairs built in the Python workers.

With a preprocessor the chain runs per epoch over batches of gray images (the
numba kernel, randomness from (seed, epoch, image key)), so every epoch sees a
different augmentation of the same images; without one, precomputed feature
arrays are reshaped to CHW.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
from pyspark.rdd import RDD
from pyspark.sql import DataFrame

from cxrzoo.preprocess.chain import ChainConfig, apply_chain

_BATCH = 64


def augmented_rdd(df: DataFrame, image_col: str, key_col: str, label_col: str, cfg: ChainConfig, seed: int,
                  epoch: int) -> RDD:
    """``(x, y)`` pairs from gray images of one size: x is (3, crop, crop) float32, y the labels (float32)."""

    def part(rows: Iterator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        buf: list = []
        for row in rows:
            buf.append(row)
            if len(buf) == _BATCH:
                yield from _batch(buf, cfg, seed, epoch)
                buf = []
        if buf:
            yield from _batch(buf, cfg, seed, epoch)

    return df.select(key_col, image_col, label_col).rdd.mapPartitions(part)


def _batch(rows: list, cfg: ChainConfig, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    side = math.isqrt(len(rows[0][1]))
    stack = np.frombuffer(b"".join(bytes(r[1]) for r in rows), np.uint8).reshape(len(rows), side, side)
    x = apply_chain(stack, [str(r[0]) for r in rows], cfg, seed, epoch)
    for i, r in enumerate(rows):
        yield x[i], np.asarray(r[2], np.float32)


def features_rdd(df: DataFrame, features_col: str, label_col: str, side: int, channels: int = 3) -> RDD:
    """``(x, y)`` pairs from flattened CHW feature arrays."""
    shape = (channels, side, side)
    return df.select(features_col, label_col).rdd.map(
        lambda r: (np.asarray(r[0], np.float32).reshape(shape), np.asarray(r[1], np.float32)))
