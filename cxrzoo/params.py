"""Params mixins shared by cxrzoo's stages, one per concept, as ``pyspark.ml.param.shared`` does."""
from __future__ import annotations

from pyspark.ml.param import Param, Params, TypeConverters

from cxrzoo.labels import LABELS, label_indices
from cxrzoo.normalization import CAFFE_MEAN, NORMALIZATIONS
from cxrzoo.errors import InputError


def _one_of(name: str, allowed) -> callable:
    def convert(value):
        v = TypeConverters.toString(value)
        if v not in allowed:
            raise InputError(f"{name} must be one of {sorted(allowed)}, got {v!r}")
        return v
    return convert


def _positive_int(name: str):
    def convert(value):
        v = TypeConverters.toInt(value)
        if v <= 0:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
        return v
    return convert


def _non_negative_int(name: str):
    def convert(value):
        v = TypeConverters.toInt(value)
        if v < 0:
            raise InputError(f"{name} must be >= 0, got {value!r}")
        return v
    return convert


def _probability(name: str):
    def convert(value):
        v = TypeConverters.toFloat(value)
        if not 0.0 <= v <= 1.0:
            raise InputError(f"{name} must be in [0, 1], got {value!r}")
        return v
    return convert


class HasCropSize(Params):
    """Mixin for param cropSize: side of the square center/random crop fed to the network."""

    cropSize = Param(Params._dummy(), "cropSize", "side of the square crop fed to the network",
                     typeConverter=_positive_int("cropSize"))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(cropSize=224)

    def getCropSize(self) -> int:
        """Gets the value of cropSize or its default value."""
        return self.getOrDefault(self.cropSize)

    def setCropSize(self, value: int) -> "Params":
        """Sets the value of :py:attr:`cropSize`."""
        return self._set(cropSize=value)


class HasNormalization(Params):
    """Mixin for param normalization: channel normalization, 'caffe' (seed) or 'imagenet'."""

    normalization = Param(Params._dummy(), "normalization",
                          f"channel normalization: 'caffe' subtracts {CAFFE_MEAN} as the seed did; "
                          "'imagenet' uses torchvision's mean/std",
                          typeConverter=_one_of("normalization", NORMALIZATIONS))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(normalization="caffe")

    def getNormalization(self) -> str:
        """Gets the value of normalization or its default value."""
        return self.getOrDefault(self.normalization)

    def setNormalization(self, value: str) -> "Params":
        """Sets the value of :py:attr:`normalization`."""
        return self._set(normalization=value)


class HasModelName(Params):
    """Mixin for param modelName: a name in the model registry."""

    modelName = Param(Params._dummy(), "modelName", "network to train, a name from cxrzoo.models.list_models()",
                      typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(modelName="tiny")

    def getModelName(self) -> str:
        """Gets the value of modelName or its default value."""
        return self.getOrDefault(self.modelName)

    def setModelName(self, value: str) -> "Params":
        """Sets the value of :py:attr:`modelName`."""
        return self._set(modelName=value)


def _label_names(value) -> list[str]:
    names = TypeConverters.toListString(value.split(",") if isinstance(value, str) else value)
    names = [n.strip() for n in names]
    label_indices(names)  # an unknown or repeated label fails here, naming the harmonised ones
    return names


class HasTargetLabels(Params):
    """Mixin for param labels: the harmonised labels (cxrzoo.labels.ALL_LABELS) a model is trained to predict."""

    labels = Param(Params._dummy(), "labels", "the labels trained, in output order: names from "
                   "cxrzoo.labels.ALL_LABELS (default: NIH's 14); entries label_mask marks unknown are left out of "
                   "the loss", typeConverter=_label_names)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(labels=list(LABELS))

    def getLabels(self) -> list[str]:
        """Gets the value of labels or its default value."""
        return list(self.getOrDefault(self.labels) or LABELS)

    def setLabels(self, value) -> "Params":
        """Sets the value of :py:attr:`labels` (a list of names, or one comma-separated string)."""
        return self._set(labels=value)


class HasTrainingParams(Params):
    """Mixin for the optimisation params: epochs, batchSize, learningRate, optimizer, dropout, engine."""

    epochs = Param(Params._dummy(), "epochs", "number of passes over the training data",
                   typeConverter=_positive_int("epochs"))
    batchSize = Param(Params._dummy(), "batchSize",
                      "global batch size; must be a multiple of the total executor cores",
                      typeConverter=_positive_int("batchSize"))
    learningRate = Param(Params._dummy(), "learningRate", "learning rate", typeConverter=TypeConverters.toFloat)
    optimizer = Param(Params._dummy(), "optimizer", "'adam' or 'sgd' (momentum 0.9, Nesterov)",
                      typeConverter=_one_of("optimizer", {"adam", "sgd"}))
    dropout = Param(Params._dummy(), "dropout", "dropout before the classifier",
                    typeConverter=_probability("dropout"))
    l2 = Param(Params._dummy(), "l2", "L2 penalty on the classifier's weight and bias (the seed's head; 0: none)",
               typeConverter=TypeConverters.toFloat)
    engine = Param(Params._dummy(), "engine", "training engine, a name from cxrzoo.engine.base.engine_names() "
                   "('bigdl', 'torch') or 'auto' (BigDL where it is installed, else torch); its own options are "
                   "Params named after it (bigdlEngineType; precision, torchCompile, torchWorkers)",
                   typeConverter=TypeConverters.toString)
    bigdlEngineType = Param(Params._dummy(), "bigdlEngineType",
                            "BigDL's compute engine, 'mkldnn' (default: every backbone trains on it) or 'mklblas' "
                            "(MKL-BLAS; exhausts the heap on ResNet-50 and DenseNet-121, but honours freezeEpochs); "
                            "a JVM-wide setting that the SparkSession must start with (cxrzoo spark-conf --engine "
                            "bigdl); left unset, training follows the engine type the running session has",
                            typeConverter=_one_of("bigdlEngineType", {"mklblas", "mkldnn"}))
    precision = Param(Params._dummy(), "precision", "torch engine: 'fp32', 'bf16' (autocast; weights and optimizer "
                      "stay fp32) or 'auto' (bf16 where the CPU has AMX or AVX512_BF16)",
                      typeConverter=_one_of("precision", {"fp32", "bf16", "auto"}))
    torchCompile = Param(Params._dummy(), "torchCompile", "torch engine: run the network through torch.compile",
                         typeConverter=TypeConverters.toBoolean)
    torchWorkers = Param(Params._dummy(), "torchWorkers", "torch engine: 'per_core' (one single-threaded DDP "
                         "process per executor core) or 'per_executor' (one process per executor, a thread per core)",
                         typeConverter=_one_of("torchWorkers", {"per_core", "per_executor"}))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(epochs=10, batchSize=32, learningRate=1e-3, optimizer="adam", dropout=0.2, engine="auto",
                         l2=0.0, bigdlEngineType="mkldnn", precision="auto", torchCompile=False,
                         torchWorkers="per_core")

    def getEpochs(self) -> int:
        """Gets the value of epochs or its default value."""
        return self.getOrDefault(self.epochs)

    def getBatchSize(self) -> int:
        """Gets the value of batchSize or its default value."""
        return self.getOrDefault(self.batchSize)

    def getLearningRate(self) -> float:
        """Gets the value of learningRate or its default value."""
        return self.getOrDefault(self.learningRate)

    def getOptimizer(self) -> str:
        """Gets the value of optimizer or its default value."""
        return self.getOrDefault(self.optimizer)

    def getDropout(self) -> float:
        """Gets the value of dropout or its default value."""
        return self.getOrDefault(self.dropout)

    def getL2(self) -> float:
        """Gets the value of l2 or its default value."""
        return self.getOrDefault(self.l2)

    def getEngine(self) -> str:
        """Gets the value of engine or its default value."""
        return self.getOrDefault(self.engine)

    def engine_name(self) -> str:
        """The engine that trains: ``engine``, with 'auto' resolved on this installation."""
        from cxrzoo.engine.base import resolve_engine

        return resolve_engine(self.getEngine())

    def getPrecision(self) -> str:
        """Gets the value of precision or its default value."""
        return self.getOrDefault(self.precision)

    def setPrecision(self, value: str) -> "Params":
        """Sets the value of :py:attr:`precision`."""
        return self._set(precision=value)

    def getTorchCompile(self) -> bool:
        """Gets the value of torchCompile or its default value."""
        return self.getOrDefault(self.torchCompile)

    def setTorchCompile(self, value: bool) -> "Params":
        """Sets the value of :py:attr:`torchCompile`."""
        return self._set(torchCompile=value)

    def getTorchWorkers(self) -> str:
        """Gets the value of torchWorkers or its default value."""
        return self.getOrDefault(self.torchWorkers)

    def setTorchWorkers(self, value: str) -> "Params":
        """Sets the value of :py:attr:`torchWorkers`."""
        return self._set(torchWorkers=value)

    def getBigdlEngineType(self) -> str:
        """Gets the value of bigdlEngineType or its default value."""
        return self.getOrDefault(self.bigdlEngineType)

    def engine_options(self) -> dict:
        """The engine's own options, from the Params its class maps them to: those set explicitly, else None
        (the engine then follows the running session, and its default where it starts one)."""
        from cxrzoo.engine.base import engine_class

        cls = engine_class(self.engine_name())
        return {opt: self.getOrDefault(self.getParam(name)) if self.isSet(self.getParam(name)) else None
                for opt, name in cls.option_params().items()}

    def setEpochs(self, value: int) -> "Params":
        """Sets the value of :py:attr:`epochs`."""
        return self._set(epochs=value)

    def setBatchSize(self, value: int) -> "Params":
        """Sets the value of :py:attr:`batchSize`."""
        return self._set(batchSize=value)

    def setLearningRate(self, value: float) -> "Params":
        """Sets the value of :py:attr:`learningRate`."""
        return self._set(learningRate=value)

    def setOptimizer(self, value: str) -> "Params":
        """Sets the value of :py:attr:`optimizer`."""
        return self._set(optimizer=value)

    def setDropout(self, value: float) -> "Params":
        """Sets the value of :py:attr:`dropout`."""
        return self._set(dropout=value)

    def setL2(self, value: float) -> "Params":
        """Sets the value of :py:attr:`l2`."""
        return self._set(l2=value)

    def setEngine(self, value: str) -> "Params":
        """Sets the value of :py:attr:`engine`."""
        return self._set(engine=value)

    def setBigdlEngineType(self, value: str) -> "Params":
        """Sets the value of :py:attr:`bigdlEngineType`."""
        return self._set(bigdlEngineType=value)


class HasFineTuning(Params):
    """Mixin for transfer learning: pretrained weights and a freeze policy."""

    pretrained = Param(Params._dummy(), "pretrained", "torchvision-layout checkpoint (.pth or .safetensors) to "
                       "start from; its ImageNet classifier is dropped for the 14-way head; '' trains from scratch",
                       typeConverter=TypeConverters.toString)
    freezeEpochs = Param(Params._dummy(), "freezeEpochs", "epochs during which the layers up to freezeUpTo are "
                         "frozen (only the head trains); then everything trains", typeConverter=TypeConverters.toInt)
    freezeUpTo = Param(Params._dummy(), "freezeUpTo", "freeze the layers from the input up to this node "
                       "(inclusive); '' means the model's feature layer, i.e. the whole backbone",
                       typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(pretrained="", freezeEpochs=0, freezeUpTo="")

    def getPretrained(self) -> str:
        """Gets the value of pretrained or its default value."""
        return self.getOrDefault(self.pretrained)

    def getFreezeEpochs(self) -> int:
        """Gets the value of freezeEpochs or its default value."""
        return self.getOrDefault(self.freezeEpochs)

    def getFreezeUpTo(self) -> str:
        """Gets the value of freezeUpTo or its default value."""
        return self.getOrDefault(self.freezeUpTo)

    def setPretrained(self, value: str) -> "Params":
        """Sets the value of :py:attr:`pretrained`."""
        return self._set(pretrained=value)

    def setFreezeEpochs(self, value: int) -> "Params":
        """Sets the value of :py:attr:`freezeEpochs`."""
        return self._set(freezeEpochs=value)

    def setFreezeUpTo(self, value: str) -> "Params":
        """Sets the value of :py:attr:`freezeUpTo`."""
        return self._set(freezeUpTo=value)
