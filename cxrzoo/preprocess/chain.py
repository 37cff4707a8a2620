"""The seed's preprocessing chain over a whole batch of gray images.

crop (center, or random when augmenting) → random horizontal flip → random
contrast (off by default) → random brightness → clip → gray → 3 channels →
channel normalization → CHW float32, in one numba pass per batch
(:mod:`cxrzoo.preprocess._augkernels`) writing straight into the caller's
output buffer.  Random decisions are a pure function of ``(seed, epoch, row
key)`` (SplitMix64 over a CRC of the image name), so a run is reproducible,
epochs differ, and no per-row generator is created.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from cxrzoo.normalization import CAFFE_MEAN, UNIT_STD
from cxrzoo.preprocess._augkernels import _augment
from cxrzoo.errors import InputError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STREAM_FLIP, STREAM_BRIGHT_USE, STREAM_BRIGHT, STREAM_CROP_Y, STREAM_CROP_X, STREAM_CONTRAST = 1, 2, 3, 4, 5, 6


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_uniforms(keys: list[str], seed: int, epoch: int, stream: int) -> np.ndarray:
    """Uniform [0, 1) numbers, one per row, determined by (seed, epoch, key, stream)."""
    crc = np.array([zlib.crc32(k.encode()) for k in keys], dtype=np.uint64)
    with np.errstate(over="ignore"):
        base = np.uint64((seed * 1_000_003 + epoch * 8191 + stream * 131) & 0xFFFFFFFFFFFF) << np.uint64(16)
        h = _splitmix64(_splitmix64(crc ^ base))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class ChainConfig:
    """Settings of the chain (pixel values on the 0–255 scale)."""

    crop: int = 224
    random_crop: bool = False
    flip_prob: float = 0.5
    brightness_delta: float = 32.0
    brightness_prob: float = 0.5
    contrast_range: tuple[float, float] = (1.0, 1.0)
    mean: tuple[float, float, float] = CAFFE_MEAN
    std: tuple[float, float, float] = UNIT_STD
    augment: bool = True


@dataclass(frozen=True)
class RowParams:
    """Every random decision of a batch, one entry per row."""

    y0: np.ndarray
    x0: np.ndarray
    flip: np.ndarray
    delta: np.ndarray
    contrast: np.ndarray


def row_params(keys: list[str], side: int, cfg: ChainConfig, seed: int = 0, epoch: int = 0) -> RowParams:
    """The crop offsets, flips, brightness deltas and contrast factors of each row."""
    n = len(keys)
    span = side - cfg.crop
    center = np.full(n, span // 2, np.int64)
    if not cfg.augment:
        return RowParams(center, center.copy(), np.zeros(n, bool), np.zeros(n, np.float32), np.ones(n, np.float32))
    u = lambda stream: row_uniforms(keys, seed, epoch, stream)  # noqa: E731
    if cfg.random_crop:
        y0 = np.minimum((u(STREAM_CROP_Y) * (span + 1)).astype(np.int64), span)
        x0 = np.minimum((u(STREAM_CROP_X) * (span + 1)).astype(np.int64), span)
    else:
        y0, x0 = center, center.copy()
    flip = u(STREAM_FLIP) < cfg.flip_prob
    use = u(STREAM_BRIGHT_USE) < cfg.brightness_prob
    delta = (u(STREAM_BRIGHT) * cfg.brightness_delta).astype(np.float32) * use
    lo, hi = cfg.contrast_range
    contrast = (lo + u(STREAM_CONTRAST) * (hi - lo)).astype(np.float32) if hi != lo else np.full(n, lo, np.float32)
    return RowParams(y0, x0, flip, delta.astype(np.float32), contrast)


def apply_chain(images: np.ndarray, keys: list[str], cfg: ChainConfig, seed: int = 0, epoch: int = 0,
                out: np.ndarray | None = None) -> np.ndarray:
    """Run the chain on a batch.

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, S, S)`` uint8 gray, S >= ``cfg.crop``.
    keys : list of str
        One stable key per row (the image name) for the random decisions.
    cfg : ChainConfig
    seed, epoch : int
        Randomness derives from (seed, epoch, key).
    out : numpy.ndarray, optional
        ``(N, 3, crop, crop)`` float32 C-contiguous buffer to write into (e.g. an Arrow buffer's memory).

    Returns
    -------
    numpy.ndarray
        ``out`` (allocated when not given).
    """
    if images.dtype != np.uint8 or images.ndim != 3:
        raise TypeError(f"expected (N, S, S) uint8 images, got {images.dtype} {images.shape}")
    n, h, w = images.shape
    c = cfg.crop
    if h < c or w < c or h != w:
        raise InputError(f"images are {h}x{w}; need square images no smaller than the crop {c}")
    if len(keys) != n:
        raise InputError(f"{len(keys)} keys for {n} images")
    if out is None:
        out = np.empty((n, 3, c, c), np.float32)
    elif out.shape != (n, 3, c, c) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise InputError(f"out must be C-contiguous float32 {(n, 3, c, c)}, got {out.dtype} {out.shape}")
    p = row_params(keys, h, cfg, seed, epoch)
    mean = np.asarray(cfg.mean, np.float32)
    inv_std = (np.float32(1.0) / np.asarray(cfg.std, np.float32)).astype(np.float32)
    _augment(np.ascontiguousarray(images), p.y0, p.x0, p.flip, p.delta, p.contrast, mean, inv_std, out)
    return out
