"""Save and load ``CXRModel`` directories atomically, on any Hadoop file system.

The layout is :mod:`cxrzoo.models.modeldir`'s: the card, the engine-neutral weights, the engine's own
artifact (under the name the engine chooses) and ``metadata/`` (Spark ML params).  The directory is
written aside and swapped in by :func:`cxrzoo.atomic.replace_with_local_dir`, so a reader never sees a
half-written model; a non-local target (``hdfs://``, ``s3a://``) is built locally and copied over.
"""
from __future__ import annotations

from pathlib import Path

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from cxrzoo.atomic import fetch_local_dir, local_path, replace_with_local_dir
from cxrzoo.engine.base import EngineUnavailableError, engine_names, get_engine
from cxrzoo.errors import PathExistsError
from cxrzoo.models import modeldir
from cxrzoo.models.cards import trained_card
from cxrzoo.models.modeldir import ModelDirError, read_card
from cxrzoo.models.spec import count_params


class CXRModelWriter(MLWriter):
    """Writes a CXRModel directory atomically."""

    def __init__(self, instance) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        """Save to ``path``; an existing directory is replaced only with ``.overwrite()``."""
        local = local_path(path)
        exists = Path(local).exists() if local is not None else \
            self.sc._jvm.org.apache.hadoop.fs.Path(path).getFileSystem(self.sc._jsc.hadoopConfiguration()).exists(
                self.sc._jvm.org.apache.hadoop.fs.Path(path))
        if exists and not self.shouldOverwrite:
            raise PathExistsError(f"{path} exists; use model.write().overwrite().save(path)")
        replace_with_local_dir(path, lambda tmp: self.saveImpl(str(tmp)), self.sc)

    def saveImpl(self, path: str) -> None:
        """Write the parts into the existing local directory ``path``."""
        m = self.instance
        # plain file I/O, as DefaultParamsWriter lays it out: its own saveMetadata runs a Spark job, which on a
        # cluster would write the local staging directory on an executor (or on fs.defaultFS)
        meta = DefaultParamsWriter._get_metadata_to_save(m, self.sc, extraMetadata={"inputSize": m.spec.input_size})
        Path(path, "metadata").mkdir()
        Path(path, "metadata", "part-00000").write_text(meta + "\n")
        artifact = m.backend.artifact_name
        m.backend.save(m.net, str(Path(path) / artifact))
        card = {"model": m.getModelName(), "input_size": m.spec.input_size,
                "channels": m.spec.in_channels, "labels": m.getLabels(), "engine": m.backend.name,
                "engine_artifact": artifact, "dropout": m.getDropout(), "image_size": m.getImageSize(),
                "normalization": m.getNormalization(), "history": getattr(m, "history", []),
                "thresholds": getattr(m, "thresholds", {})}
        facts = trained_card(m.getModelName(), m.spec.input_size, m.getNormalization(), m.getImageSize(),
                             count_params(m.spec), engine=m.backend.name, pretrained=m.getPretrained(),
                             metrics={"validation": {"mean_auc": _best_val(card["history"])}})
        modeldir.write(path, m.weights(), card, facts)
        from cxrzoo.train.curve import write_learning_curve

        write_learning_curve(card["history"], Path(path, "learning_curve.png"))


def _best_val(history: list[dict]) -> float | None:
    vals = [h.get("val_mean_auc") for h in history if h.get("val_mean_auc") is not None]
    return max(vals) if vals else None


class CXRModelReader(MLReader):
    """Reads a CXRModel directory (the engine that trained it must be installed)."""

    def __init__(self, cls) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        """Load the model at ``path``."""
        root, release = fetch_local_dir(path, self.sc)
        try:
            card = read_card(root)
            if not (root / "metadata").is_dir():
                raise ModelDirError(f"{path} has no metadata/: not written by CXRModel.save")
            meta = DefaultParamsReader._parseMetaData((root / "metadata" / "part-00000").read_text())
            model = self.cls()
            model._resetUid(meta["uid"])  # the saved uid, as Spark ML's readers keep it (PipelineModel stages)
            DefaultParamsReader.getAndSetParams(model, meta)
            spec = model._spec(int(meta["inputSize"]))
            name = card.get("engine", model.getEngine())
            neutral = "`cxrzoo evaluate` falls back to OpenVINO, and `cxrzoo export` / `score` need no engine"
            try:  # the engine's options are a training matter: a model runs on whatever this session has
                engine = get_engine(name)
            except EngineUnavailableError as e:
                raise EngineUnavailableError(f"{path} was trained with the {name!r} engine, which is not "
                                             f"available here ({e}); {neutral}") from None
            except ValueError:  # a name this version does not know (a newer cxrzoo's engine, or none at all)
                raise ModelDirError(f"{path} was trained with the {name!r} engine, which this version of cxrzoo "
                                    f"does not know (it knows {', '.join(engine_names())}); {neutral}") from None
            artifact = root / card.get("engine_artifact", engine.artifact_name)
            try:
                net = engine.load(str(artifact), spec)
            except (OSError, ValueError) as e:
                raise ModelDirError(f"{artifact}, the {name} engine's network of {path}, cannot be read ({e}): the "
                                    "model directory is damaged, or its card names another engine; retrain, or copy "
                                    "it again (`cxrzoo export` reads only the card and the weights)") from e
            model.net, model.spec, model.backend = net, spec, engine
            model.history = card.get("history", [])
            model.thresholds = card.get("thresholds", {})
            return model
        finally:
            release()
