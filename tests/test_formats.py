"""One owner per saved format: the model directory (cxrzoo/models/modeldir.py) and the exported IR
(cxrzoo/models/irdir.py), one card reader and one error type for a bad card; directories this release saved
before the change still load (``tests/fixtures/saved-6150a7b``: a torch ``tiny`` trained and exported by cxrzoo
at commit 6150a7b)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrzoo.models import irdir, modeldir
from cxrzoo.models.cards import CardError

pytestmark = pytest.mark.profile("spark4")  # no Spark, nothing engine-specific beyond torch: one profile

SAVED = Path(__file__).with_name("fixtures") / "saved-6150a7b"


def test_a_model_directory_saved_before_the_change_still_loads(spark, tmp_path):
    from cxrzoo.export import export_openvino
    from cxrzoo.score import load_scorer
    from cxrzoo.train import CXRModel

    card = modeldir.read_card(SAVED / "model")
    assert card["format"] == modeldir.FORMAT and card["engine"] == "torch"
    weights = modeldir.read_weights(SAVED / "model")
    model = CXRModel.load(str(SAVED / "model"))
    for node, kinds in weights.items():  # the engine's own artifact and the neutral weights agree
        for kind, value in kinds.items():
            np.testing.assert_array_equal(model.weights()[node][kind], value, err_msg=f"{node}.{kind}")
    ir = export_openvino(SAVED / "model", tmp_path / "ir")  # re-exported by this release: the same scores
    x = np.random.default_rng(0).integers(0, 256, (3, card["image_size"], card["image_size"]), dtype=np.uint8)
    np.testing.assert_allclose(load_scorer(ir).infer(x), load_scorer(SAVED / "ir").infer(x), atol=1e-5)


def test_an_ir_saved_before_the_change_still_loads():
    card = irdir.read_card(SAVED / "ir")
    assert card["format"] == irdir.FORMAT and card["labels"] and card["input"]["shape"][1] > 0


@pytest.mark.parametrize("layout, card, error", [("model", modeldir.CARD, modeldir.ModelDirError),
                                                 ("ir", irdir.CARD, irdir.NotAnIRDirError)])
def test_a_bad_card_of_either_format_is_one_error_type(tmp_path, layout, card, error):
    read = {"model": modeldir.read_card, "ir": irdir.read_card}[layout]
    cases = {"binary": b"\x89PNG\x00\x01", "not json": b"{\n nope", "a list": b"[1, 2]",
             "another format": json.dumps({"format": "cxrzoo-x/9", "labels": ["a"]}).encode()}
    for what, content in cases.items():
        d = tmp_path / f"{layout}-{what.replace(' ', '-')}"
        shutil.copytree(SAVED / layout, d)
        (d / card).write_bytes(content)
        with pytest.raises(CardError) as e:
            read(d)
        assert isinstance(e.value, error) and str(d) in str(e.value), (what, e.value)
        assert ("export" if layout == "ir" else "retrain") in str(e.value), (what, e.value)


def test_each_layout_names_the_other_when_given_it(tmp_path):
    with pytest.raises(modeldir.ModelDirError, match="is an exported OpenVINO IR"):
        modeldir.read_card(SAVED / "ir")
    with pytest.raises(irdir.NotAnIRDirError, match="is a model directory written by `cxrzoo train`"):
        irdir.read_card(SAVED / "model")


def test_old_import_paths_of_the_formats_keep_working():
    from cxrzoo.irformat import CARD, XML
    from cxrzoo.score import NotAnIRDirError, read_card
    from cxrzoo.score.runtime import IR_FORMAT

    assert (CARD, XML, IR_FORMAT) == (irdir.CARD, irdir.XML, irdir.FORMAT)
    assert NotAnIRDirError is irdir.NotAnIRDirError and read_card is irdir.read_card
