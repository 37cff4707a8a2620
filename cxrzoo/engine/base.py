"""The narrow interface between cxrzoo's Spark ML stages and a training engine.

An engine builds a network from a :class:`~cxrzoo.models.spec.NetSpec`, opens a
:class:`Trainer` on it (distributed synchronous SGD, one epoch per call, over an
:class:`EpochData` — rows of a DataFrame and how to decode them into ``(features CHW float32, labels
float32)`` — that may change from epoch to epoch, per-epoch augmentation, while weights and optimizer
state carry over),
predicts on a DataFrame, saves and loads the network, and hands out its weights by
node name so that exporters need nothing from the engine.

Engines are looked up by name (:func:`get_engine`); each one's module is imported only then, and the
library it wraps only when a network is built, trained, loaded or run.  An engine also says what a
SparkSession needs for it (:meth:`Engine.spark_settings`, :meth:`Engine.check_session`), how it
splits a batch (:meth:`Engine.check_batch`), and maps its own failure types to :class:`EpochFailedError`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np
import pyarrow as pa
from pyspark.rdd import RDD
from pyspark.sql import DataFrame

from cxrzoo.arrowutil import rows_to_binary_array

from cxrzoo.models.spec import NetSpec
from cxrzoo.errors import InputError, JobFailedError

Weights = dict[str, dict[str, np.ndarray]]


class EpochFailedError(JobFailedError):
    """An epoch whose result cannot be trusted (e.g. an executor was lost mid-way); retry it from a checkpoint."""


class EngineUnavailableError(InputError, ImportError):
    """The engine asked for is not installed (or cannot be imported) here."""


# engines cxrzoo knows, by name → the module that registers each (imported on first use)
ENGINE_MODULES = {"bigdl": "cxrzoo.engine.bigdl", "torch": "cxrzoo.engine.torch_engine"}


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
    masked: bool = False  # some targets are NaN (unknown labels): the loss must skip them (Engine.masks_loss)
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


Decoder = Callable[[pa.RecordBatch], "tuple[np.ndarray, np.ndarray]"]


@dataclass(eq=False)
class EpochData:
    """One epoch's training rows, and how an Arrow batch of them becomes ``(x, y)`` arrays.

    ``frame`` holds the columns ``decode`` reads; ``decode`` (picklable: it runs in the Python workers)
    maps a record batch to ``x`` (N, C, S, S) float32 and ``y`` (N, labels) float32, with the epoch's
    augmentation (randomness from (seed, epoch, image)) already in it.  ``key`` names the content:
    two EpochData with equal keys hold the same rows and decode them the same way, so an engine may
    keep its cached copy of the decoded data; equal ``rows_key`` means the same rows (perhaps decoded
    differently: another epoch's augmentation), so an engine may keep its cached copy of the rows.
    Engines either read the frame's Arrow batches themselves (torch) or take :meth:`pairs` (BigDL).
    """

    frame: DataFrame
    decode: Decoder
    key: Hashable
    rows_key: Hashable = None  # None: the same as key

    def __post_init__(self) -> None:
        self._pairs: RDD | None = None
        if self.rows_key is None:
            self.rows_key = self.key

    def pairs(self) -> RDD:
        """The rows as an RDD of ``(x, y)`` numpy pairs (built once; decoded in the Python workers).

        Arrays cross from the Arrow UDF to the RDD as float32 bytes, not as pickled floats.
        """
        if self._pairs is None:
            decode = self.decode
            packed = self.frame.mapInArrow(lambda batches: (_packed(decode(b)) for b in batches),
                                           "x binary, y binary, shape array<int>")
            self._pairs = packed.rdd.map(lambda r: (np.frombuffer(r[0], np.float32).reshape(r[2]),
                                                    np.frombuffer(r[1], np.float32)))
        return self._pairs


def _packed(xy: tuple[np.ndarray, np.ndarray]) -> pa.RecordBatch:
    x, y = xy
    n = len(x)
    rows = list(range(n))
    xb = np.ascontiguousarray(x, np.float32).reshape(n, -1).view(np.uint8)
    yb = np.ascontiguousarray(y, np.float32).reshape(n, -1).view(np.uint8)
    shape = pa.array([list(x.shape[1:])] * n, pa.list_(pa.int32()))
    return pa.RecordBatch.from_arrays([rows_to_binary_array(xb, rows, n), rows_to_binary_array(yb, rows, n), shape],
                                      names=["x", "y", "shape"])


class Trainer(ABC):
    """A training run on one network: weights and optimizer state persist across :meth:`train_epoch` calls."""

    @abstractmethod
    def train_epoch(self, data: EpochData, epoch: int) -> EpochStats:
        """One pass over ``data``; ``epoch`` counts from 0.

        Data with the same ``key`` as the previous epoch's may be served from the engine's cached copy.
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
    artifact_name: str  # the file or directory of the engine's own format inside a model directory
    user_env: tuple[str, ...] = ()  # of process_env(), the variables a user's own value overrides
    reproducible: bool = False  # the same seed, data and cluster layout train the same weights
    masks_loss: bool = False  # the loss skips NaN targets (labels unknown for an image, cxrzoo.targets)
    # the Python distributions the engine runs on (what `cxrzoo pack` adds to an archive for it), and whether
    # their own requirements are followed (BigDL's metadata pins a pyspark that cxrzoo does not run on)
    distributions: tuple[str, ...] = ()
    follow_requirements: bool = True

    @classmethod
    def available(cls) -> str | None:
        """None when the engine can run here, else why not."""
        return None

    @classmethod
    def option_params(cls) -> dict[str, str]:
        """Keyword options of the constructor → the estimator Param that carries each."""
        return {}

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Keyword options of the constructor."""
        return tuple(cls.option_params())

    def spark_settings(self, master: str, executor_cores: int | None = None,
                       executor_site: str | None = None) -> dict[str, str]:
        """Spark settings this engine needs that only take effect when the JVMs start.

        ``executor_site``: where the executors find the Python packages (the ``site-packages`` of an
        archive shipped with ``spark.archives``, relative to their working directory); default: where
        they are installed here.
        """
        return {}

    def process_env(self, master: str, executor_cores: int | None = None) -> dict[str, str]:
        """Environment variables the driver JVM should start with (applied only to a session cxrzoo creates)."""
        return {}

    def check_session(self, spark: Any) -> dict[str, str]:
        """Of :meth:`spark_settings`, those the running session lacks (empty: the engine can run on it)."""
        return {}

    def check_batch(self, sc: Any, batch_size: int) -> None:
        """Raise ValueError when ``batch_size`` cannot be split the way this engine trains."""

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


def engine_names() -> list[str]:
    """Names of the engines cxrzoo knows (installed or not)."""
    return sorted(set(ENGINE_MODULES) | set(_ENGINES))


def engine_class(name: str) -> type[Engine]:
    """The class of engine ``name``, importing its module (not the library it wraps) on first use."""
    if name not in _ENGINES and name in ENGINE_MODULES:
        import_module(ENGINE_MODULES[name])
    try:
        return _ENGINES[name]
    except KeyError:
        raise InputError(f"unknown engine {name!r}; known engines: {', '.join(engine_names())}") from None


AUTO_ORDER = ("bigdl", "torch")
# each engine's option rows, in a module that imports neither the engine nor its library
OPTION_MODULES = {"bigdl": "cxrzoo.engine.bigdl_options", "torch": "cxrzoo.engine.torch_options"}


def engine_option_rows() -> tuple:
    """Every engine's rows of training options (:class:`cxrzoo.params.Option`, ``owner`` the engine), in
    :data:`OPTION_MODULES` order; they become Params of the estimator and options of ``cxrzoo train``."""
    return tuple(row for name in OPTION_MODULES for row in import_module(OPTION_MODULES[name]).OPTIONS)


def resolve_engine(name: str, reproducible: bool = False) -> str:
    """``name``, or for 'auto' the first engine of :data:`AUTO_ORDER` that can run here.

    With ``reproducible``, 'auto' prefers an engine whose training repeats bit for bit under the same
    seed (:attr:`Engine.reproducible`), and falls back to the first available one.
    """
    if name != "auto":
        return name
    why = {}
    order = sorted(AUTO_ORDER, key=lambda n: not engine_class(n).reproducible) if reproducible else AUTO_ORDER
    for n in order:
        why[n] = engine_class(n).available()
        if why[n] is None:
            return n
    raise EngineUnavailableError("no training engine is installed: " + "; ".join(f"{k}: {v}" for k, v in why.items()))


def get_engine(name: str, **options: Any) -> Engine:
    """Instantiate the engine called ``name`` with its own ``options``.

    Raises
    ------
    ValueError
        For a name cxrzoo does not know, or options the engine does not take.
    EngineUnavailableError
        When the engine's library is not installed here.
    """
    name = resolve_engine(name)
    cls = engine_class(name)
    why = cls.available()
    if why is not None:
        raise EngineUnavailableError(f"engine {name!r} is not available: {why}")
    unknown = set(options) - set(cls.option_names())
    if unknown:
        raise InputError(f"engine {name!r} takes no options {sorted(unknown)}; it takes {list(cls.option_names())}")
    return cls(**options)
