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
