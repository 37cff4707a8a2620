"""PyTorch engine: NetSpec as ``torch.nn`` (torchvision names), DDP over Spark barrier tasks, bf16 autocast.

Runs on Spark 3.5 and 4.x alike (nothing of it lives in the JVM).  Training is one barrier stage per
epoch (:mod:`cxrzoo.engine.torch_trainer`); inference is an Arrow UDF running the network in each
Python worker.  ``precision="auto"`` trains in bf16 autocast where the CPU has AMX or AVX512_BF16,
else fp32; tensors are channels_last.
"""
from __future__ import annotations

import functools
import logging
import warnings
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

from cxrzoo.arrowutil import float_rows, rows_to_list_array
from cxrzoo.engine.base import Engine, TrainConfig, Trainer, Weights, register_engine
from cxrzoo.models.spec import NetSpec
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)
# tensors over read-only Arrow memory are only read
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
PRECISIONS = ("fp32", "bf16", "auto")
WORKERS = ("per_core", "per_executor")


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> str | None:
    """The CPU's native bf16 feature (``amx_bf16`` or ``avx512_bf16``), or None."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")),
                     [])
    except OSError:
        flags = []
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)


@dataclass(frozen=True)
class Layout:
    """How many DDP processes (barrier tasks) train, and the torch threads of each."""

    workers: int
    threads: int


def _predict_batches(batches: Iterator[pa.RecordBatch], spec: NetSpec, blob: Any, token: str, features_col: str,
                     output_col: str, batch_size: int) -> Iterator[pa.RecordBatch]:
    import torch

    net = _cached_net(spec, blob, token)
    torch.set_num_threads(1)
    k = spec.in_channels * spec.input_size ** 2
    for b in batches:
        x = float_rows(b.column(features_col), k, features_col).reshape(-1, spec.in_channels, spec.input_size,
                                                                       spec.input_size)
        out = np.empty((len(x), spec.output.attrs["cout"]), np.float32)
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                out[i:i + batch_size] = torch.sigmoid(net(torch.from_numpy(x[i:i + batch_size]))).numpy()
        probs = rows_to_list_array(out, list(range(len(x))), len(x))
        yield pa.RecordBatch.from_arrays(list(b.columns) + [probs], names=list(b.schema.names) + [output_col])


_NETS: dict[str, Any] = {}


def _cached_net(spec: NetSpec, blob: Any, token: str) -> Any:
    """The network of a broadcast state blob, built once per Python worker and broadcast."""
    import torch

    from cxrzoo.engine import torch_net as tn
    from cxrzoo.engine.torch_state import load_into

    net = _NETS.get(token)
    if net is None:
        _NETS.clear()
        net = tn.SpecNet(spec)
        load_into(torch, net, None, blob.value)
        net.eval()
        _NETS[token] = net
    return net


@register_engine
class TorchEngine(Engine):
    """Train with torch DDP (gloo) on Spark barrier tasks; predict in an Arrow UDF."""

    name = "torch"
    artifact_name = "torch.safetensors"
    masks_loss = True  # torch_worker.loss_fn: NaN targets are left out of the loss
    reproducible = True  # seeded per (seed, epoch, rank); rows dealt deterministically; fixed reduction order
    distributions = ("torch",)

    def __init__(self, precision: str | None = "auto", compile: bool | None = False,
                 workers: str | None = "per_core") -> None:
        precision, workers = precision or "auto", workers or "per_core"
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if workers not in WORKERS:
            raise InputError(f"torchWorkers must be one of {WORKERS}, not {workers!r}")
        self.precision, self.compile, self.workers = precision, bool(compile), workers

    @classmethod
    def available(cls) -> str | None:
        from importlib.util import find_spec

        return None if find_spec("torch") is not None else "PyTorch is not installed (pip install 'cxrzoo[torch]')"

    @classmethod
    def option_params(cls) -> dict[str, str]:
        return {"precision": "precision", "compile": "torchCompile", "workers": "torchWorkers"}

    def resolved_precision(self) -> str:
        """fp32 or bf16: what ``auto`` means on this CPU (the driver's; executors are assumed alike)."""
        if self.precision != "auto":
            return self.precision
        return "bf16" if cpu_bf16() else "fp32"

    def layout(self, sc: Any) -> Layout:
        """Processes and threads for the cluster as it is now (its task slots, not spark.default.parallelism)."""
        task_cpus = int(sc.getConf().get("spark.task.cpus", "1"))
        jsc = sc._jsc.sc()
        try:
            slots = int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))
        except Exception:  # noqa: BLE001 - py4j: an older Spark without the method
            slots = int(sc.defaultParallelism) // task_cpus
        slots = max(1, slots)
        if self.workers == "per_core":
            return Layout(workers=slots, threads=task_cpus)
        if sc.master.startswith("local"):
            return Layout(workers=1, threads=slots * task_cpus)
        cores = sc.getConf().get("spark.executor.cores")
        if cores is None or int(cores) != task_cpus:
            raise InputError("torchWorkers='per_executor' on a cluster needs spark.task.cpus equal to "
                             "spark.executor.cores (one task, one DDP process, per executor); use 'per_core'")
        return Layout(workers=slots, threads=task_cpus)

    def spark_settings(self, master: str, executor_cores: int | None = None,
                       executor_site: str | None = None) -> dict[str, str]:
        """The state of a ResNet-50 with Adam's moments (~300 MB) comes back to the driver every epoch."""
        return {"spark.driver.maxResultSize": "4g"}

    def check_batch(self, sc: Any, batch_size: int) -> None:
        n = self.layout(sc).workers
        if batch_size % n:
            lo, hi = max(n, batch_size // n * n), (batch_size // n + 1) * n
            raise InputError(f"batchSize {batch_size} is not a multiple of the {n} torch workers (each takes the "
                             f"same share of a batch); use {lo} or {hi}")

    def build(self, spec: NetSpec, seed: int = 0) -> Any:
        from cxrzoo.engine import torch_net as tn

        return tn.build(spec, seed)

    def set_weights(self, net: Any, spec: NetSpec, weights: Weights) -> None:
        from cxrzoo.engine import torch_net as tn

        tn.set_node_weights(net, weights)

    def freeze(self, net: Any, names: list[str] | None) -> None:
        for name in names or []:
            net.layer(name)  # an unknown layer fails now
        net.cxr_frozen = list(names or [])

    def trainer(self, net: Any, spec: NetSpec, config: TrainConfig) -> Trainer:
        from cxrzoo.engine.torch_trainer import TorchTrainer

        return TorchTrainer(net, spec, config, self)

    def predict(self, net: Any, spec: NetSpec, df: DataFrame, features_col: str, output_col: str,
                batch_size: int = 64) -> DataFrame:
        import torch

        from cxrzoo.engine.torch_state import pack_state

        sc = df.sparkSession.sparkContext
        version = getattr(net, "cxr_version", 0)
        held = getattr(net, "cxr_broadcast", None)
        if held is None or held[0] != version:  # one broadcast per state of the weights
            if held is not None:
                held[1].destroy()
            held = (version, sc.broadcast(pack_state(torch, net, None)), uuid.uuid4().hex)
            net.cxr_broadcast = held
        _, blob, token = held
        schema = StructType(list(df.schema.fields) + [StructField(output_col, ArrayType(FloatType()))])
        return df.mapInArrow(lambda batches: _predict_batches(batches, spec, blob, token, features_col,
                                                              output_col, batch_size), schema)

    def save(self, net: Any, path: str) -> None:
        import torch

        from cxrzoo.engine.torch_state import pack_state

        with open(path, "wb") as f:
            f.write(pack_state(torch, net, None, {"spec_output": spec_name(net)}))

    def load(self, path: str, spec: NetSpec) -> Any:
        import torch

        from cxrzoo.engine import torch_net as tn
        from cxrzoo.engine.torch_state import load_into

        net = tn.SpecNet(spec)
        with open(path, "rb") as f:
            load_into(torch, net, None, f.read())
        return net

    def weights(self, net: Any, spec: NetSpec) -> Weights:
        from cxrzoo.engine import torch_net as tn

        return tn.node_weights(net)


def spec_name(net: Any) -> str:
    """The output node's name (recorded in saved files)."""
    return net.spec.output.name


__all__ = ["TorchEngine", "cpu_bf16", "PRECISIONS"]
