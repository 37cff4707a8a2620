"""The training options, declared once: one row each (:class:`cxrzoo.params.Option`).

The rows make the Params of ``CXREstimator`` and ``CXRModel`` (with their getters and setters), the estimator's
keyword constructor and ``cxrzoo train``'s options and ``--help``. Each engine adds the rows of the options it
reads (:func:`cxrzoo.engine.base.engine_option_rows`). A new training option is one row here, or in its engine's
rows, plus the code that uses it.
"""
from __future__ import annotations

from pyspark.ml.param import TypeConverters

from cxrzoo.engine.base import engine_names, engine_option_rows, resolve_engine
from cxrzoo.errors import InputError
from cxrzoo.labels import LABELS, label_indices
from cxrzoo.params import Option, _non_negative_int, _one_of, _positive_int, _probability, options_mixin
from cxrzoo.thresholds import METHODS
from cxrzoo.train.schedule import KINDS, MONITORS, LRSchedule
from cxrzoo.train.weighting import WEIGHTINGS


def _label_names(value) -> list[str]:
    names = TypeConverters.toListString(value.split(",") if isinstance(value, str) else value)
    names = [n.strip() for n in names]
    label_indices(names)  # an unknown or repeated label fails here, naming the harmonised ones
    return names


def _sensitivity(value: object) -> float:
    v = TypeConverters.toFloat(value)
    if not 0.0 < v <= 1.0:
        raise InputError(f"targetSensitivity must be in (0, 1], got {value!r}")
    return v


def _model_names() -> list[str]:
    from cxrzoo.models import list_models

    return list_models()


_f, _s, _b = TypeConverters.toFloat, TypeConverters.toString, TypeConverters.toBoolean

TRAINING: tuple[Option, ...] = (
    Option("modelName", "tiny", "network to train, a name from cxrzoo.models.list_models()", _s, "--model",
           aliases=("--backbone",), choices=_model_names),
    Option("labels", list(LABELS), "the labels trained, in output order: comma-separated names from "
           "cxrzoo.labels.ALL_LABELS (NIH's 14, then Enlarged Cardiomediastinum, Lung Opacity, Lung Lesion, Pleural "
           "Other, Fracture, Support Devices); entries label_mask marks unknown are left out of the loss",
           _label_names, "--labels", kind=list),
    Option("pretrained", "", "torchvision-layout checkpoint (.pth or .safetensors) to start from; its ImageNet "
           "classifier is dropped for the new head; '' trains from scratch", _s, "--pretrained"),
    Option("freezeEpochs", 0, "epochs during which the layers up to freezeUpTo are frozen (only the head trains); "
           "then everything trains", _non_negative_int("freezeEpochs"), "--freeze-epochs", kind=int),
    Option("freezeUpTo", "", "freeze the layers from the input up to this node (inclusive); '' means the model's "
           "feature layer, i.e. the whole backbone", _s, "--freeze-up-to"),
    Option("epochs", 10, "number of passes over the training data", _positive_int("epochs"), "--epochs", kind=int),
    Option("batchSize", 32, "global batch size; a multiple of the total executor cores",
           _positive_int("batchSize"), "--batch-size", kind=int),
    Option("optimizer", "adam", "'adam', or 'sgd' with momentum (Nesterov unless nesterov is off)",
           _one_of("optimizer", {"adam", "sgd"}), "--optimizer", choices=("adam", "sgd")),
    Option("momentum", 0.9, "SGD momentum", _f, "--momentum", kind=float),
    Option("nesterov", True, "SGD with Nesterov momentum (needs momentum > 0); the flag turns it off", _b,
           "--no-nesterov", kind=bool),
    Option("learningRate", 1e-3, "base (peak) learning rate, reached after the warmup", _f, "--lr", kind=float),
    Option("lrSchedule", "constant", "after the warmup: constant rate, reduce on plateau of the monitored loss, "
           "or cosine decay to minLR by the last epoch", _one_of("lrSchedule", KINDS), "--schedule", choices=KINDS),
    Option("warmupEpochs", 0, "epochs of linear warmup from warmupStartLR to learningRate (the seed: 5)",
           _non_negative_int("warmupEpochs"), "--warmup-epochs", kind=int),
    Option("warmupStartLR", 1e-7, "learning rate of the first warmup epoch", _f, "--warmup-start-lr", kind=float),
    Option("plateauMonitor", "loss", "plateau watches 'loss' (training, the seed) or 'val_loss' (needs a "
           "validation set; CheXNet)", _one_of("plateauMonitor", MONITORS), "--plateau-monitor", choices=MONITORS),
    Option("plateauFactor", 0.1, "plateau multiplies the rate by this factor", _f, "--plateau-factor", kind=float),
    Option("plateauPatience", 1, "epochs without improvement before the plateau reduces the rate",
           _non_negative_int("plateauPatience"), "--plateau-patience", kind=int),
    Option("plateauEpsilon", 0.01, "smallest decrease of the monitored loss that counts as an improvement "
           "(absolute)", _f, "--plateau-epsilon", kind=float),
    Option("minLR", 1e-15, "floor of the plateau decay; end of the cosine", _f, "--min-lr", kind=float),
    Option("classWeighting", "none", "BCE weighting: 'none', or 'chexnet': per class, positives weighted by "
           "N/(P+N) and negatives by P/(P+N), counted on the training set", _one_of("classWeighting", WEIGHTINGS),
           "--class-weights", choices=WEIGHTINGS),
    Option("dropout", 0.2, "dropout before the classifier", _probability("dropout"), "--dropout", kind=float),
    Option("l2", 0.0, "L2 penalty on the classifier's weight and bias (the seed's head; 0: none)", _f, "--l2",
           kind=float),
    Option("engine", "auto", "training engine, a name from cxrzoo.engine.base.engine_names() or 'auto' (the "
           "first installed of BigDL and torch); its own options follow its name", _s, "--engine",
           choices=lambda: engine_names() + ["auto"]),
    Option("seed", 0, "random seed (initial weights, augmentation, shuffling)", TypeConverters.toInt, "--seed",
           kind=int),
    Option("checkpointDir", "", "directory of training checkpoints (weights, optimizer state, schedule position, "
           "epoch); a fit on a directory holding a checkpoint of the same run resumes from it; '' uses a temporary "
           "one (retries only; `cxrzoo train` uses OUT.ckpt)", _s, "--checkpoint-dir"),
    Option("checkpointInterval", 1, "epochs between checkpoints (the last epoch is always saved)",
           _non_negative_int("checkpointInterval"), "--checkpoint-interval", kind=int),
    Option("summaryDir", "", "the engine's Train/Validation summaries for TensorBoard (tensorboard --logdir DIR); "
           "'' writes none that outlive the run", _s, "--summary-dir"),
    Option("keepBest", True, "with a validation set: end on the weights of the epoch of the highest validation mean "
           "AUC (the first of equals), not the last epoch's; the flag keeps the last", _b, "--keep-last", kind=bool),
    Option("thresholdMethod", "youden", "per-label operating threshold chosen on the validation set: 'youden' (max "
           "sensitivity + specificity - 1) or 'sensitivity' (the most specific reaching targetSensitivity)",
           _one_of("thresholdMethod", METHODS), "--threshold-method", choices=METHODS),
    Option("targetSensitivity", 0.9, "sensitivity the 'sensitivity' threshold method reaches, in (0, 1]",
           _sensitivity, "--target-sensitivity", kind=float),
    Option("allowPatientOverlap", False, "accept a validation set sharing patients with the training data (an "
           "image-wise split, which inflates AUC); off refuses it", _b, "--allow-patient-overlap", kind=bool),
    Option("imageSize", 256, "side of the ingested gray images the features were cropped from (recorded for "
           "export)", TypeConverters.toInt),
)


def training_options() -> tuple[Option, ...]:
    """Every training option: :data:`TRAINING`, then each engine's rows."""
    return TRAINING + engine_option_rows()


class TrainingOptions(options_mixin("_TrainingParams", training_options(),
                                    "The training options' Params (cxrzoo.train.options).")):
    """The Params of :func:`training_options`, and what is computed from them."""

    def getLabels(self) -> list[str]:
        """Gets the value of labels or its default value (NIH's 14)."""
        return list(self.getOrDefault(self.labels) or LABELS)

    def engine_name(self) -> str:
        """The engine that trains: ``engine``, with 'auto' resolved on this installation."""
        return resolve_engine(self.getEngine())

    def engine_options(self) -> dict:
        """The engine's own options, from its rows' Params: those set explicitly, else None (the engine then
        follows the running session, and its default where it starts one)."""
        from cxrzoo.engine.base import engine_class

        cls = engine_class(self.engine_name())
        return {opt: self.getOrDefault(self.getParam(name)) if self.isSet(self.getParam(name)) else None
                for opt, name in cls.option_params().items()}

    def lr_schedule(self, peak: float, epochs: int) -> LRSchedule:
        """The :class:`LRSchedule` these params describe."""
        g = self.getOrDefault
        return LRSchedule(kind=g(self.lrSchedule), peak=peak, epochs=epochs, warmup_epochs=g(self.warmupEpochs),
                          warmup_start=g(self.warmupStartLR), factor=g(self.plateauFactor),
                          patience=g(self.plateauPatience), epsilon=g(self.plateauEpsilon), min_lr=g(self.minLR),
                          monitor=g(self.plateauMonitor))
