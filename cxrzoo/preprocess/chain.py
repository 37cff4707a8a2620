"""The seed's preprocessing chain over a whole batch of gray images, in NumPy.

center crop → random horizontal flip → random brightness → gray → 3 channels →
channel normalization → CHW float32.  Random decisions are a pure function of
``(seed, epoch, row key)`` (SplitMix64 over a CRC of the image name), so a run
is reproducible and no per-row Python generator is created.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


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
    """Settings of the chain."""

    crop: int = 224
    flip_prob: float = 0.5
    brightness_delta: float = 32.0
    brightness_prob: float = 0.5
    mean: tuple[float, float, float] = (123.68, 116.779, 103.939)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    augment: bool = True


def apply_chain(images: np.ndarray, keys: list[str], cfg: ChainConfig, seed: int = 0, epoch: int = 0) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        ``(N, 3, crop, crop)`` float32.
    """
    if images.dtype != np.uint8 or images.ndim != 3:
        raise TypeError(f"expected (N, S, S) uint8 images, got {images.dtype} {images.shape}")
    n, h, w = images.shape
    c = cfg.crop
    if h < c or w < c:
        raise ValueError(f"images are {h}x{w}, smaller than the crop {c}")
    y0, x0 = (h - c) // 2, (w - c) // 2
    crop = images[:, y0:y0 + c, x0:x0 + c].astype(np.float32)
    if cfg.augment and n:
        flip = row_uniforms(keys, seed, epoch, 1) < cfg.flip_prob
        crop[flip] = crop[flip, :, ::-1]
        use = row_uniforms(keys, seed, epoch, 2) < cfg.brightness_prob
        delta = (row_uniforms(keys, seed, epoch, 3) * cfg.brightness_delta).astype(np.float32) * use
        crop += delta[:, None, None]
        np.minimum(crop, 255.0, out=crop)
    out = np.empty((n, 3, c, c), np.float32)
    for ch in range(3):
        np.subtract(crop, np.float32(cfg.mean[ch]), out=out[:, ch])
        if cfg.std[ch] != 1.0:
            out[:, ch] /= np.float32(cfg.std[ch])
    return out
