"""The narrow interface between cxrzoo's Spark ML stages and a training engine.

An engine builds a network from a :class:`~cxrzoo.models.spec.NetSpec`, opens a
:class:`Trainer` on it (distributed synchronous SGD, one epoch per call, over an
RDD of ``(features CHW float32, labels float32)`` pairs that may change from epoch
to epoch — per-epoch augmentation — while weights and optimizer state carry over),
predicts on a DataFrame, saves and loads the network, and hands out its weights by
node name so that exporters need nothing from the engine.  BigDL DLlib is the engine today
(:mod:`cxrzoo.engine.bigdl`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.rdd import RDD
from pyspark.sql import DataFrame

from cxrzoo.models.spec import NetSpec

Weights = dict[str, dict[str, np.ndarray]]


class EpochFailedError(RuntimeError):
    """An epoch whose result cannot be trusted (e.g. an executor was lost mid-way); retry it from a checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    """What the engine needs to know to train."""

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    seed: int = 0
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    class_weights: tuple | None = None  # (w_pos, w_neg) per class for the BCE, None: unweighted
    summary_dir: str | None = None  # TensorBoard summaries (None: a temporary directory)
    app_name: str = "cxrzoo"


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of training did."""

    epoch: int
    images: int
    seconds: float
    loss: float | None
    learning_rate: float | None
    steady_images_per_s: float | None = None  # median over the epoch's iterations after the first
    iteration_images_per_s: tuple[float, ...] = ()  # each iteration's throughput, in order (if the engine reports it)

    @property
    def images_per_s(self) -> float:
        """Training throughput of the epoch."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")


class Trainer(ABC):
    """A training run on one network: weights and optimizer state persist across :meth:`train_epoch` calls."""

    @abstractmethod
    def train_epoch(self, data: RDD, epoch: int) -> EpochStats:
        """One pass over ``data`` (an RDD of ``(x, y)`` numpy pairs); ``epoch`` counts from 0.

        Passing the same RDD object again reuses the engine's cached copy of it.
        """

    @abstractmethod
    def set_learning_rate(self, rate: float) -> None:
        """Learning rate of the following epochs (optimizer state is kept)."""

    @abstractmethod
    def save_state(self, path: Path) -> None:
        """Write weights and optimizer state (moments, counters) into the existing directory ``path``."""

    @abstractmethod
    def load_state(self, path: Path) -> None:
        """Restore what :meth:`save_state` wrote; the next :meth:`train_epoch` continues from there."""

    def recover(self, timeout: float = 180.0) -> None:
        """Prepare for a retry after a failed epoch (e.g. wait for lost executors to be replaced)."""

    def record_validation(self, epoch: int, metrics: dict[str, float]) -> None:
        """Write validation scalars (e.g. for TensorBoard); by default nothing."""

    @abstractmethod
    def close(self) -> None:
        """Release cached data and temporary files."""


class Engine(ABC):
    """A training/inference backend."""

    name: str

    @abstractmethod
    def build(self, spec: NetSpec, seed: int = 0) -> Any:
        """Create an untrained network."""

    @abstractmethod
    def set_weights(self, net: Any, spec: NetSpec, weights: Weights) -> None:
        """Load parameters (and batch-norm statistics) given by node name, in the layout :meth:`weights` returns."""

    @abstractmethod
    def freeze(self, net: Any, names: list[str] | None) -> None:
        """Stop updating the parameters of the layers ``names``; ``None`` unfreezes every layer."""

    @abstractmethod
    def trainer(self, net: Any, spec: NetSpec, config: TrainConfig) -> Trainer:
        """Open a training run on ``net`` (updated in place as epochs complete)."""

    @abstractmethod
    def predict(self, net: Any, spec: NetSpec, df: DataFrame, features_col: str, output_col: str,
                batch_size: int = 64) -> DataFrame:
        """Append ``output_col``: sigmoid probabilities, array<float>."""

    @abstractmethod
    def save(self, net: Any, path: str) -> None:
        """Write the network to ``path`` (a new file)."""

    @abstractmethod
    def load(self, path: str, spec: NetSpec) -> Any:
        """Read a network written by :meth:`save`."""

    @abstractmethod
    def weights(self, net: Any, spec: NetSpec) -> Weights:
        """Trained parameters by node name: conv ``weight`` (O, I/g, k, k) and ``bias``; bn ``weight``,
        ``bias``, ``running_mean``, ``running_var``; linear ``weight`` (O, I) and ``bias``."""


_ENGINES: dict[str, type[Engine]] = {}


def register_engine(cls: type[Engine]) -> type[Engine]:
    """Class decorator registering an engine under ``cls.name``."""
    _ENGINES[cls.name] = cls
    return cls


def get_engine(name: str = "bigdl") -> Engine:
    """Instantiate the engine called ``name`` (``mklblas`` and ``mkldnn`` are BigDL requiring that engine type)."""
    if name in ("bigdl", "mklblas", "mkldnn") and "bigdl" not in _ENGINES:
        import cxrzoo.engine.bigdl  # noqa: F401  (registers itself)
    if name in ("mklblas", "mkldnn"):
        return _ENGINES["bigdl"](engine_type=name)
    try:
        return _ENGINES[name]()
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; available: {sorted(_ENGINES) or ['bigdl']}") from None
