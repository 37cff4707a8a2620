"""BigDL DLlib engine: nn-API graphs, DistriOptimizer's synchronous SGD one epoch at a time, NNModel inference."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cxrzoo.engine import bigdl_session as bs
from cxrzoo.engine.base import Engine, TrainConfig, Trainer, Weights, register_engine
from cxrzoo.engine.bigdl_trainer import BigDLTrainer
from cxrzoo.models.spec import NetSpec, pair, param_shapes, spatial_sizes
from cxrzoo.errors import InputError, JobFailedError

log = logging.getLogger(__name__)


def _layers():
    from bigdl.dllib.nn import layer as L

    return L


def _channels(spec: NetSpec, name: str) -> int:
    a = spec.node(name).attrs
    return int(a.get("channels", a.get("cout", 0)))


class _Fixed:
    """A frozen 1×1 depthwise convolution computing ``weight * x + bias`` per channel."""

    def __init__(self, L, name: str, channels: int, weight: float, bias: float) -> None:
        self.module = L.SpatialConvolution(channels, channels, 1, 1, n_group=channels, with_bias=True)
        self.module.set_name(name)
        self.weights = [np.full((channels, 1, 1, 1, 1), weight, np.float32), np.full(channels, bias, np.float32)]

    def apply(self) -> None:
        """Set the fixed values (after any reset) and keep them out of training."""
        self.module.set_weights(self.weights)
        self.module.freeze()


def _relu6_as_relus(L, name: str, x, channels: int, fixed: list[_Fixed]):
    """clamp(x, 0, 6) = relu(x) - relu(x - 6) from layers BigDL's MKL-DNN IR supports (it has no ReLU6)."""
    low = L.ReLU().set_name(f"{name}/relu")(x)
    minus6, negate = _Fixed(L, f"{name}/minus6", channels, 1.0, -6.0), _Fixed(L, f"{name}/negate", channels, -1.0, 0.0)
    fixed += [minus6, negate]
    high = L.ReLU().set_name(f"{name}/relu_high")(minus6.module(x))
    return L.CAddTable().set_name(name)([low, negate.module(high)])


def _build_graph(spec: NetSpec, relu6_as_relus: bool = False):
    """The BigDL graph of ``spec``, the Python layer handles by node name, and fixed helper layers to set."""
    from bigdl.dllib.optim.optimizer import L2Regularizer

    L = _layers()
    fixed: list[_Fixed] = []
    sizes = spatial_sizes(spec)
    out: dict[str, Any] = {}
    layers: dict[str, Any] = {}
    for n in spec.nodes:
        a = n.attrs
        if n.op == "input":
            out[n.name] = L.Input()
            continue
        ins = [out[i] for i in n.inputs]
        if n.op == "conv":  # BigDL takes (kW, kH, dW, dH, padW, padH)
            (kh, kw), (ph, pw) = pair(a["k"]), pair(a["pad"])
            m = L.SpatialConvolution(a["cin"], a["cout"], kw, kh, a["stride"], a["stride"], pw, ph,
                                     n_group=a.get("groups", 1), with_bias=a.get("bias", True))
        elif n.op == "bn":
            m = L.SpatialBatchNormalization(a["channels"], eps=a.get("eps", 1e-5))
        elif n.op == "relu":
            m = L.ReLU()
        elif n.op == "relu6" and relu6_as_relus:
            out[n.name] = _relu6_as_relus(L, n.name, ins[0], _channels(spec, n.inputs[0]), fixed)
            continue
        elif n.op == "relu6":
            m = L.ReLU6()
        elif n.op == "maxpool":
            m = L.SpatialMaxPooling(a["k"], a["k"], a["stride"], a["stride"], a.get("pad", 0), a.get("pad", 0))
        elif n.op == "avgpool":  # torch's default count_include_pad=True
            m = L.SpatialAveragePooling(a["k"], a["k"], a["stride"], a["stride"], a.get("pad", 0), a.get("pad", 0),
                                        count_include_pad=True)
        elif n.op == "gap":  # average pooling with the full kernel (the MKL-DNN IR rejects global pooling)
            s = sizes[n.inputs[0]]
            m = L.SpatialAveragePooling(s, s, s, s)
        elif n.op == "flatten":
            m = L.Reshape([a["channels"]], batch_mode=True)
        elif n.op == "dropout":
            m = L.Dropout(a["p"])
        elif n.op == "linear":
            reg = (lambda: L2Regularizer(a["l2"])) if a.get("l2") else (lambda: None)
            m = L.Linear(a["cin"], a["cout"], wRegularizer=reg(), bRegularizer=reg())
        elif n.op == "add":
            m = L.CAddTable()
        elif n.op == "concat":
            m = L.JoinTable(2, 0)  # absolute dimension 2 (channels of NCHW); the MKL-DNN IR needs nInputDims <= 0
        else:  # pragma: no cover - NetSpec validates ops
            raise InputError(n.op)
        m.set_name(n.name)
        layers[n.name] = m
        out[n.name] = m(ins[0] if len(ins) == 1 else ins)
    return L.Model([out["input"]], [out[spec.output.name]]), layers, fixed


def _jtensor_to_numpy(t) -> np.ndarray:
    """A JVM BigDL Tensor to numpy, in one pickled transfer (not element by element over py4j)."""
    from bigdl.dllib.utils.common import callBigDlFunc

    return np.asarray(callBigDlFunc("float", "toJTensor", t).to_ndarray(), np.float32)


@register_engine
@bs.quiet_class
class BigDLEngine(Engine):
    """Train with BigDL's DistriOptimizer over the Spark cluster; predict with NNModel."""

    name = "bigdl"
    artifact_name = "net.bigdl"
    masks_loss = True  # bigdl_trainer: an unknown label's signed-weight target is 0 (no loss, no gradient)
    user_env = ("KMP_BLOCKTIME",)
    distributions = ("bigdl-dllib-spark3", "bigdl-core")
    follow_requirements = False  # BigDL 2.4.0's metadata pins pyspark 3.1.3 and conda-pack

    def __init__(self, engine_type: str | None = None) -> None:
        if engine_type is not None and engine_type not in bs.ENGINE_TYPES:
            raise InputError(f"bigdlEngineType must be one of {bs.ENGINE_TYPES}, not {engine_type!r}")
        self._asked = engine_type

    @property
    def engine_type(self) -> str:
        """The engine type asked for; if none was, the one the running JVM has, else the default (mkldnn)."""
        if self._asked is not None:
            return self._asked
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        return (bs.running_engine_type(sc) or "mklblas") if sc is not None else bs.DEFAULT_ENGINE_TYPE

    @classmethod
    def available(cls) -> str | None:
        return bs.unavailable()

    @classmethod
    def option_params(cls) -> dict[str, str]:
        return {"engine_type": "bigdlEngineType"}

    def spark_settings(self, master: str, executor_cores: int | None = None,
                       executor_site: str | None = None) -> dict[str, str]:
        return bs.spark_settings(master, executor_cores, self.engine_type, executor_site)

    def process_env(self, master: str, executor_cores: int | None = None) -> dict[str, str]:
        return bs.threads_env(master, executor_cores, self.engine_type)

    def check_session(self, spark: Any) -> dict[str, str]:
        return bs.check(spark, self.engine_type)

    def check_batch(self, sc: Any, batch_size: int) -> None:
        """BigDL splits each global batch evenly over the executor cores."""
        cores = sc.defaultParallelism
        if batch_size % cores:
            lo, hi = max(cores, batch_size // cores * cores), (batch_size // cores + 1) * cores
            raise InputError(f"batchSize {batch_size} is not a multiple of the {cores} executor cores (BigDL gives "
                             f"every core the same share of a batch); use {lo} or {hi}")

    def _ready(self) -> None:
        """Import and initialise BigDL on the active session (once)."""
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        if SparkContext._active_spark_context is None:
            raise JobFailedError("BigDL needs a running SparkSession: call cxrzoo.get_spark() first")
        # the active session is per JVM thread; the default one is the application's
        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        bs.initialise(spark, self.engine_type)

    def build(self, spec: NetSpec, seed: int = 0) -> Any:
        self._ready()
        net, layers, fixed = _build_graph(spec, relu6_as_relus=self.engine_type == "mkldnn")
        net.set_name("cxrzoo_net")  # BigDL keys optimizer state by model name: stable across processes (resume)
        net.set_seed(seed)
        net.reset()
        for f in fixed:
            f.apply()
        net.cxr_fixed = [f.module.name() for f in fixed]  # stay frozen through freeze/unfreeze
        net.cxr_fixed_layers = fixed  # MKL-DNN trains them anyway: the trainer resets them after every epoch
        # Compact all weights into one storage now, before any forward: BigDL's optimizer compacts
        # them when training starts, and a convolution that ran forward before that keeps a view on
        # the old storage (stale weights in later driver-side forwards).  Compacting twice is a no-op.
        net.value.getParameters()
        net.cxr_layers = layers  # Python handles of the layers, by node name (weight import)
        return net

    def set_weights(self, net: Any, spec: NetSpec, weights: Weights) -> None:
        layers = getattr(net, "cxr_layers", None)
        if layers is None:
            raise InputError("set_weights needs a network built by this engine's build() in this process")
        shapes = param_shapes(spec)
        for name, kinds in weights.items():
            if name not in shapes:
                raise KeyError(f"{name!r} is not a layer with parameters in this network")
            m = layers[name]
            current = m.get_weights()  # BigDL's own shapes (a leading group dimension on convolutions)
            order = ["weight", "bias"][:len(current)]
            m.set_weights([np.ascontiguousarray(kinds[k], np.float32).reshape(c.shape)
                           for k, c in zip(order, current)])
            if "running_mean" in kinds:
                m.set_running_mean(np.ascontiguousarray(kinds["running_mean"], np.float32))
                m.set_running_std(np.ascontiguousarray(kinds["running_var"], np.float32))  # BigDL: the variance

    def freeze(self, net: Any, names: list[str] | None) -> None:
        # BigDL zeroes these layers' gradient scales; with Adam, parameters that never had a
        # gradient get no update, so a backbone frozen from the first epoch stays exactly put.
        # BigDL's MKL-DNN engine converts the graph for training and drops those scales.
        if names and self.engine_type == "mkldnn":
            raise InputError("freezing layers (freezeEpochs) needs bigdlEngineType='mklblas': BigDL's MKL-DNN "
                             "engine trains frozen layers anyway (a frozen MobileNetV2 stem moved by up to 6e-3 in "
                             "one epoch); start the session with `cxrzoo spark-conf --engine bigdl "
                             "--bigdl-engine-type mklblas`")
        net.unfreeze()
        keep = list(names or []) + list(getattr(net, "cxr_fixed", []))
        if keep:
            net.freeze(keep)

    def trainer(self, net: Any, spec: NetSpec, config: TrainConfig) -> Trainer:
        self._ready()
        return BigDLTrainer(net, spec, config, self)

    def predict(self, net: Any, spec: NetSpec, df: DataFrame, features_col: str, output_col: str,
                batch_size: int = 64) -> DataFrame:
        self._ready()
        from bigdl.dllib.nn.layer import Sequential, Sigmoid
        from bigdl.dllib.nnframes import NNModel

        net.evaluate()
        scorer = Sequential().add(net).add(Sigmoid())
        shape = [spec.in_channels, spec.input_size, spec.input_size]
        tmp = f"_{output_col}_raw"
        nn_model = NNModel(scorer, shape).setFeaturesCol(features_col).setPredictionCol(tmp).setBatchSize(batch_size)
        out = nn_model.transform(df)
        return out.withColumn(output_col, F.col(tmp).cast("array<float>")).drop(tmp)

    def save(self, net: Any, path: str) -> None:
        net.saveModel(path, over_write=True)

    def load(self, path: str, spec: NetSpec) -> Any:
        self._ready()
        from bigdl.dllib.nn.layer import Model

        return Model.loadModel(path)

    def weights(self, net: Any, spec: NetSpec) -> Weights:
        # per module over py4j: Model.parameters() stalls on graphs of ~150 modules (MobileNetV2)
        jmodules = {m.getName(): m for m in _all_modules(net.value)}
        shapes = param_shapes(spec)
        out: Weights = {}
        for n in spec.nodes:
            if n.op not in ("conv", "linear", "bn"):
                continue
            jm = jmodules[n.name]
            params = jm.parameters()._1()
            tensors = [_jtensor_to_numpy(params[i]) for i in range(len(params))]
            d = {"weight": tensors[0]}
            if len(tensors) > 1:
                d["bias"] = tensors[1]
            if n.op == "conv":  # BigDL keeps a leading group dimension
                d["weight"] = d["weight"].reshape(shapes[n.name]["weight"])
            elif n.op == "bn":
                d["running_mean"] = _jtensor_to_numpy(jm.runningMean())
                d["running_var"] = _jtensor_to_numpy(jm.runningVar())
            out[n.name] = d
        return out


def _all_modules(jmodule) -> list:
    """Every leaf module of a JVM BigDL container."""
    found = []
    stack = [jmodule]
    while stack:
        m = stack.pop()
        try:
            children = m.modules()
        except Exception:  # noqa: BLE001 - py4j: leaf modules have no 'modules'
            children = None
        if children is not None and children.size() > 0:
            stack.extend(children.apply(i) for i in range(children.size()))
        else:
            found.append(m)
    return found


__all__ = ["BigDLEngine"]
