"""The training recipe: LR schedules, class-weighted BCE, checkpoints and resume, summaries, Params, progress."""
import io
import json
import logging
import math
import time

import numpy as np
import pytest
from conftest import needs_bigdl

from cxrzoo.train import CXREstimator, CXRModel
from cxrzoo.train.checkpoint import CheckpointDir, CheckpointMismatchError
from cxrzoo.train.schedule import LRSchedule
from cxrzoo.train.weighting import chexnet_weights


def test_warmup_then_plateau_as_the_seed():
    s = LRSchedule("plateau", peak=1e-4, epochs=15, warmup_epochs=5, warmup_start=1e-7, factor=0.1, patience=1,
                   epsilon=0.01, min_lr=1e-15)
    assert [s.rate(e) for e in range(5)] == pytest.approx([1e-7 + (1e-4 - 1e-7) * e / 5 for e in range(5)])
    for e in range(5):  # no decay during the warmup, whatever the loss does
        s.observe(e, {"loss": 1.0})
    assert s.rate(5) == pytest.approx(1e-4)
    s.observe(5, {"loss": 0.50})  # first post-warmup epoch sets the best
    s.observe(6, {"loss": 0.45})  # improved by more than epsilon
    assert s.rate(7) == pytest.approx(1e-4)
    s.observe(7, {"loss": 0.445})  # not by more than epsilon: patience 1 is used up
    assert s.rate(8) == pytest.approx(1e-5)
    s.observe(8, {"loss": 0.44})
    assert s.rate(9) == pytest.approx(1e-6)
    again = LRSchedule.from_dict(json.loads(json.dumps(s.to_dict())))  # a checkpoint keeps the position
    assert again.rate(9) == pytest.approx(1e-6) and again.state == s.state


def test_cosine_and_val_loss_monitor():
    s = LRSchedule("cosine", peak=1e-3, epochs=12, warmup_epochs=2, min_lr=0.0)
    assert s.rate(2) == pytest.approx(1e-3)
    assert s.rate(7) == pytest.approx(0.5e-3)
    assert s.rate(11) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 9 / 10)))
    p = LRSchedule("plateau", monitor="val_loss")
    with pytest.raises(ValueError, match="needs a validation set"):
        p.observe(0, {"loss": 0.3, "val_loss": None})
    with pytest.raises(ValueError, match="lrSchedule"):
        LRSchedule("step")


def test_chexnet_weights():
    w_pos, w_neg = chexnet_weights(np.array([10, 0, 100]), 100)
    np.testing.assert_allclose(w_pos, [0.9, 1.0, 0.0])
    np.testing.assert_allclose(w_neg, [0.1, 0.0, 1.0])
    with pytest.raises(ValueError):
        chexnet_weights(np.array([101]), 100)


@needs_bigdl
def test_weighted_bce_matches_numpy(spark):
    from cxrzoo.engine.bigdl_trainer import _weighted_bce, _weighted_targets

    rng = np.random.default_rng(0)
    z = (rng.normal(size=(8, 14)) * 3).astype(np.float32)
    y = (rng.random((8, 14)) < 0.3).astype(np.float32)
    w_pos, w_neg = rng.uniform(0.5, 2, 14).astype(np.float32), rng.uniform(0.1, 1, 14).astype(np.float32)
    t = np.stack([_weighted_targets(w_pos, w_neg)((None, row))[1] for row in y])
    crit = _weighted_bce(14)
    sp = lambda v: np.logaddexp(0, v)  # noqa: E731
    ref = np.mean(y * w_pos * sp(-z) + (1 - y) * w_neg * sp(z))
    assert float(crit.forward(z, t)) == pytest.approx(ref, rel=1e-5)
    assert float(crit.forward(z, t)) == pytest.approx(ref, rel=1e-5)  # a loss, not a running sum
    sig = 1 / (1 + np.exp(-z))
    grad = (y * w_pos * (sig - 1) + (1 - y) * w_neg * sig) / z.size
    np.testing.assert_allclose(np.asarray(crit.backward(z, t)), grad, atol=1e-7)
    # MKL-DNN's training step back-propagates the criterion's stored gradInput, not backward's return value
    # (BigDL's DistriOptimizer): it must hold the same gradient, or the net trains on zeros
    field = crit.value.gradInput()
    stored = np.array([[field.valueAt(i + 1, j + 1) for j in range(14)] for i in range(8)])
    np.testing.assert_allclose(stored, grad, atol=1e-7)


def _tiny_trainer(spark, rows: int, epochs: int, seed: int):
    """A BigDL trainer of the ``tiny`` net (32² inputs, batch 16) and ``rows`` random (x, y) pairs."""
    from cxrzoo.engine.base import TrainConfig, get_engine
    from cxrzoo.models import create_spec

    from cxrzoo.train.feed import features_data

    spec, eng = create_spec("tiny", input_size=32), get_engine("bigdl")
    net = eng.build(spec, seed=0)
    rng = np.random.default_rng(seed)
    rows_ = [(rng.normal(size=3 * 32 * 32).astype(np.float32).tolist(), (rng.random(14) < 0.3).astype(float).tolist())
             for _ in range(rows)]
    df = spark.createDataFrame(rows_, "features array<float>, labels array<float>").repartition(2)
    data = features_data(df, "features", "labels", 32)
    return eng.trainer(net, spec, TrainConfig(epochs=epochs, batch_size=16)), data


@needs_bigdl
def test_adam_state_carries_across_epochs(spark):
    """Second moments keep accumulating in epoch 2: BigDL sees the same state objects on every iteration, not a
    fresh copy of the epoch-start state.

    Both epochs run at LR 0 on the same data, so the weights, and with them the gradients, are the same in both:
    epoch 2 adds about what epoch 1 did (r₂ ≈ 2·r₁), where a reset every iteration would leave r₂ ≈ r₁ plus one
    step's share (≈ 1.1·r₁).  (With epoch 1 learning, its early gradients are larger than epoch 2's, and the
    carried-over r₂ measured only 1.45·r₁ once.)"""
    trainer, data = _tiny_trainer(spark, rows=128, epochs=2, seed=0)

    def second_moments() -> float:
        return sum(float(m.values().iterator().next().state().get("r").get().sum()) for m in trainer._parts)

    try:
        trainer.set_learning_rate(0.0)
        trainer.train_epoch(data, 0)
        r1 = second_moments()
        trainer.train_epoch(data, 1)
        assert r1 > 0 and second_moments() > 1.6 * r1
    finally:
        trainer.close()


@needs_bigdl
def test_optimizer_state_round_trips_through_safetensors_and_json(spark, tmp_path):
    """A checkpoint's Adam state (moments of every partition, counters) is plain tensors and JSON; a new trainer
    loads it back exactly and keeps accumulating on it."""
    from cxrzoo.models.weights import load_safetensors

    trainer, data = _tiny_trainer(spark, rows=64, epochs=2, seed=1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        trainer.train_epoch(data, 0)
        trainer.save_state(tmp_path / "a")
    finally:
        trainer.close()
    saved = load_safetensors(tmp_path / "a" / "optim.safetensors")
    manifest = json.loads((tmp_path / "a" / "optim.json").read_text())
    assert {k.rsplit(".", 1)[1] for k in saved} == {"s", "r", "denom"}  # Adam's moments, per partition
    assert [m["evalCounter"] for p in manifest["partitions"] for m in p.values()] == [4] * len(manifest["partitions"])
    assert manifest["driver"]["neval"] == 5
    r_saved = sum(float(v.sum()) for k, v in saved.items() if k.endswith(".r"))
    fresh, data = _tiny_trainer(spark, rows=64, epochs=2, seed=1)
    try:
        fresh.load_state(tmp_path / "a")
        fresh.save_state(tmp_path / "b")
        again = load_safetensors(tmp_path / "b" / "optim.safetensors")
        assert sorted(again) == sorted(saved)
        for key in saved:
            np.testing.assert_array_equal(again[key], saved[key])
        def counters(m: dict) -> list:  # the integer entries are restored exactly (floats: the last Loss)
            return [{k: {n: v for n, v in d.items() if isinstance(v, int)} for k, d in p.items()}
                    for p in m["partitions"]]

        assert counters(json.loads((tmp_path / "b" / "optim.json").read_text())) == counters(manifest)
        fresh.set_learning_rate(0.0)
        fresh.train_epoch(data, 1)  # continues on the loaded moments: they grow from r_saved, not from 0
        fresh.save_state(tmp_path / "b")
        r_after = sum(float(v.sum()) for k, v in load_safetensors(tmp_path / "b" / "optim.safetensors").items()
                      if k.endswith(".r"))
        assert r_after > 1.5 * r_saved
    finally:
        fresh.close()


@needs_bigdl
def test_a_java_serialized_checkpoint_is_refused_with_a_way_on(spark, tmp_path):
    from cxrzoo.engine.bigdl_optim import OptimStateError

    (tmp_path / "optim_partitions.ser").write_bytes(b"\xac\xed\x00\x05")  # Java serialization's magic
    trainer, _ = _tiny_trainer(spark, rows=16, epochs=1, seed=2)
    try:
        with pytest.raises(OptimStateError, match="no longer read.*new checkpoint directory"):
            trainer.load_state(tmp_path)
    finally:
        trainer.close()


@needs_bigdl
def test_local_mode_trains_without_fp16_exchange(spark):
    """With one node BigDL's weights and gradients stay in the JVM: exchanged uncompressed (fp32), and every
    iteration's throughput is reported."""
    trainer, data = _tiny_trainer(spark, rows=64, epochs=1, seed=1)
    try:
        stats = trainer.train_epoch(data, 0)
        assert trainer._opt.value.compress() == "none"
    finally:
        trainer.close()
    thr = stats.iteration_images_per_s
    assert len(thr) == 4 and min(thr) > 0
    after_first = sorted(thr[1:])  # steady: the median of the 3 iterations after the first, the middle one
    assert stats.steady_images_per_s == after_first[1]


@pytest.fixture(scope="module")
def feats(spark, ingested):
    from cxrzoo.preprocess import CXRPreprocessor

    df = spark.read.parquet(ingested).orderBy("image_index")
    return CXRPreprocessor(cropSize=32, augment=False).transform(df).select("features", "labels").cache()


def test_recipe_params_are_explained_and_persisted(spark, feats, tmp_path):
    est = CXREstimator(epochs=2, batchSize=8, optimizer="sgd", momentum=0.8, learningRate=0.02,
                       lrSchedule="cosine", warmupEpochs=1, classWeighting="chexnet", seed=1)
    text = est.explainParams()
    for name in ("lrSchedule", "warmupEpochs", "plateauMonitor", "classWeighting", "checkpointDir", "summaryDir",
                 "momentum", "nesterov", "freezeEpochs", "pretrained", "l2", "dropout", "engine", "batchSize"):
        assert name in text
    model = est.fit(feats)
    assert [h["learning_rate"] for h in model.history] == pytest.approx([1e-7, 0.02])
    assert all(np.isfinite(h["loss"]) for h in model.history)
    model.save(str(tmp_path / "m"))
    loaded = CXRModel.load(str(tmp_path / "m"))
    assert loaded.getOrDefault("lrSchedule") == "cosine" and loaded.getOrDefault("classWeighting") == "chexnet"
    assert loaded.getOrDefault("momentum") == pytest.approx(0.8)


def test_bad_recipe_settings_fail_early(spark, feats):
    with pytest.raises(ValueError, match="multiple of the 2 (executor cores|torch workers).*use 8 or 10"):
        CXREstimator(epochs=1, batchSize=9).fit(feats)
    with pytest.raises(ValueError, match="needs a validation set"):
        CXREstimator(epochs=1, batchSize=8, lrSchedule="plateau", plateauMonitor="val_loss").fit(feats)
    with pytest.raises(ValueError, match="nesterov"):
        CXREstimator(optimizer="sgd", momentum=0.0)
    with pytest.raises(ValueError, match="classWeighting"):
        CXREstimator(classWeighting="inverse")


def test_plans_that_cannot_finish_are_refused_before_training(spark, feats, tmp_path):
    """A plateau on val_loss without validation data and an unknown freezeUpTo layer fail at fit(), with the fix in
    the message, before any epoch (50 epochs of training would take minutes and leave checkpoints)."""
    from cxrzoo.models.spec import UnknownLayerError

    ck = tmp_path / "ck"
    plateau = CXREstimator(epochs=50, batchSize=8, lrSchedule="plateau", plateauMonitor="val_loss", warmupEpochs=3,
                           checkpointDir=str(ck))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"needs a validation set.*--validation.*plateauMonitor='loss'"):
        plateau.fit(feats)
    frozen = CXREstimator(epochs=50, batchSize=8, freezeEpochs=1, checkpointDir=str(ck)).setFreezeUpTo("conv9")
    with pytest.raises(ValueError, match=r"no layer 'conv9'.*did you mean conv5, .*valid names include conv1, .*, fc$"):
        frozen.fit(feats)  # set after the constructor: checked by fit()
    assert time.perf_counter() - t0 < 10 and not ck.exists()
    with pytest.raises(UnknownLayerError, match="'features.denseblock9'"):  # the constructor checks it as well
        CXREstimator(modelName="densenet121", freezeEpochs=1, freezeUpTo="features.denseblock9")


def test_cli_train_refuses_val_loss_without_validation_before_spark(tmp_path):
    """The CLI checks the plan before it starts Spark or reads the data: a missing --data is not even looked at."""
    from cxrzoo.cli import main

    log = tmp_path / "train.log"
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        main(["-q", "--log-file", str(log), "train", "--data", str(tmp_path / "absent.parquet"), "--out",
              str(tmp_path / "m"), "--schedule", "plateau", "--plateau-monitor", "val_loss"])
    assert e.value.code == 2 and time.perf_counter() - t0 < 10
    text = log.read_text()
    assert "needs a validation set" in text and "--validation" in text and "--plateau-monitor loss" in text
    assert "absent.parquet" not in text  # refused before the data was read


def test_resume_continues_from_the_last_checkpoint(spark, feats, tmp_path, caplog):
    ck = tmp_path / "ck"
    kw = dict(batchSize=8, seed=4, learningRate=3e-3, lrSchedule="plateau", warmupEpochs=1,
              checkpointDir=str(ck), classWeighting="chexnet")
    first = CXREstimator(epochs=2, **kw).fit(feats)
    assert sorted(p.name for p in ck.iterdir()) == ["epoch-0001", "epoch-0002"]  # the newest two are kept
    files = {p.name for p in (ck / "epoch-0002").iterdir()}
    assert {"weights.safetensors", "optim.safetensors", "optim.json", "state.json"} <= files
    assert not [f for f in files if f.endswith((".ser", ".pkl", ".npz"))]  # nothing executable or pickled
    with caplog.at_level(logging.INFO, logger="cxrzoo.train.loop"):
        resumed = CXREstimator(epochs=4, **kw).fit(feats)
    assert "resuming from" in caplog.text and "2 of 4 epochs done" in caplog.text
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    assert resumed.history[:2] == json.loads(json.dumps(first.history))  # the first two epochs are not rerun
    assert all(np.isfinite(h["loss"]) and h["learning_rate"] > 0 for h in resumed.history[2:])
    w0, w1 = first.weights(), resumed.weights()
    assert not all(np.array_equal(w0[n][k], w1[n][k]) for n in w0 for k in w0[n])  # epochs 3-4 trained on
    again = CXREstimator(epochs=4, **kw).fit(feats)  # all done: nothing left to train, same weights
    w2 = again.weights()
    assert all(np.array_equal(w1[n][k], w2[n][k]) for n in w1 for k in w1[n])
    with pytest.raises(CheckpointMismatchError, match="input_size: 32 there, 24 now"):
        CheckpointDir(ck).check({"model": "tiny", "input_size": 24, "batch_size": 8})


@needs_bigdl
def test_summaries_for_tensorboard(spark, feats, tmp_path):
    from bigdl.dllib.optim.optimizer import TrainSummary, ValidationSummary

    est = CXREstimator(epochs=2, batchSize=8, seed=1, summaryDir=str(tmp_path / "tb"), allowPatientOverlap=True)
    est.setValidation(feats)
    model = est.fit(feats)
    assert (tmp_path / "tb" / "cxrzoo" / "train").is_dir() and (tmp_path / "tb" / "cxrzoo" / "validation").is_dir()
    loss = TrainSummary(str(tmp_path / "tb"), "cxrzoo").read_scalar("Loss")
    assert len(loss) == 2 * math.ceil(60 / 8)
    auc = ValidationSummary(str(tmp_path / "tb"), "cxrzoo").read_scalar("MeanAUC")
    assert [round(float(v[1]), 5) for v in auc] == [round(h["val_mean_auc"], 5) for h in model.history]
    assert all(h["val_loss"] > 0 for h in model.history)


def test_progress_bar_lines():
    from cxrzoo.progress import EpochProgress

    out = io.StringIO()
    bar = EpochProgress(4, stream=out, width=8)
    bar({"epoch": 0, "loss": 0.5, "val_mean_auc": 0.61, "learning_rate": 1e-3, "images_per_s": 12.0, "seconds": 3})
    bar({"epoch": 3, "loss": 0.4, "val_mean_auc": None, "learning_rate": 1e-4, "images_per_s": 13.0, "seconds": 3})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[##------] 1/4 epochs  loss 0.5000  val AUC 0.6100") and "ETA" in lines[0]
    assert lines[1].startswith("[########] 4/4 epochs") and "ETA" not in lines[1]


def test_progress_bar_follows_the_epoch_log_even_when_info_is_hidden():
    from cxrzoo.progress import EpochProgress
    from cxrzoo.train.loop import _log_epoch

    out = io.StringIO()
    record = {"epoch": 1, "loss": 0.5, "val_mean_auc": None, "learning_rate": 1e-3, "images_per_s": 9.0}
    logger = logging.getLogger("cxrzoo.train.progress")
    logger.setLevel(logging.WARNING)  # as under `cxrzoo -q`
    try:
        with EpochProgress(2, stream=out, width=4).attached():
            _log_epoch(record, 2)
        _log_epoch(record, 2)  # detached: nothing more drawn
    finally:
        logger.setLevel(logging.NOTSET)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("[####] 2/2 epochs  loss 0.5000")
