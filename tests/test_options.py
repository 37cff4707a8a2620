"""Each training option is declared once (cxrzoo/train/options.py and each engine's rows): the estimator's Params,
its keyword constructor and ``cxrzoo train --help`` come from the same rows, and list the same defaults."""
from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys

import pytest

from cxrzoo.cli_parser import shown_default
from cxrzoo.train import CXREstimator
from cxrzoo.train.options import training_options

pytestmark = pytest.mark.profile("spark4")  # no Spark session; the same rows in both profiles


def _explained() -> dict[str, tuple[str, object]]:
    """explainParams() as {name: (doc, default)}, parsed from its text."""
    out = {}
    for line in CXREstimator().explainParams().splitlines():
        m = re.match(r"^(\w+): (.*) \(default: (.*?)(, current: .*)?\)$", line)
        assert m, line
        try:
            default = ast.literal_eval(m.group(3))
        except (ValueError, SyntaxError):
            default = m.group(3)
        out[m.group(1)] = (m.group(2), default)
    return out


def _help() -> str:
    run = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "train", "--help"], capture_output=True, text=True,
                         timeout=120, env={"COLUMNS": "10000", **__import__("os").environ})
    assert run.returncode == 0, run.stderr
    return " ".join(run.stdout.split())


def test_explain_params_and_help_list_the_same_options_with_the_same_defaults():
    explained, help_text = _explained(), _help()
    rows = training_options()
    flagged = [o for o in rows if o.flag]
    assert len(flagged) >= 30  # the recipe's options, not a table that lost its rows
    for opt in rows:
        doc, default = explained[opt.name]
        assert default == opt.default, (opt.name, default, opt.default)
        if opt.flag is None:
            continue
        entry = f"{' '.join(doc.split())} (default: {shown_default(default)})"
        assert entry in help_text, (opt.flag, entry)
        assert re.search(rf"(^| ){re.escape(opt.flag)}[ ,]", help_text), opt.flag
    # every --flag of the help is a row's or one of the few that are not training Params
    others = {"--help", "--data", "--out", "--validation", "--normalization", "--crop", "--no-progress", "--master",
              "--driver-memory", "--executor-cores", "--num-executors", "--executor-memory", "--backbone",
              "--logdir"}  # the last: tensorboard's, in summaryDir's help
    listed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text))
    assert listed - others == {o.flag for o in flagged}, listed - others ^ {o.flag for o in flagged}


def test_the_constructor_takes_exactly_the_options():
    sig = inspect.signature(CXREstimator)
    assert {n for n in sig.parameters} == {o.name for o in training_options()} | {
        "featuresCol", "labelCol", "predictionCol", "normalization"}
    for opt in training_options():
        assert sig.parameters[opt.name].default == opt.default, opt.name
        est = CXREstimator()
        get = getattr(est, "get" + opt.name[0].upper() + opt.name[1:])
        assert get() == opt.default or (opt.name == "labels" and list(get()) == opt.default)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['epoch'\\]"):
        CXREstimator(epoch=3)


def test_a_flag_sets_its_param_and_an_option_not_given_keeps_the_default():
    from cxrzoo.cli_parser import build_parser, option_values

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--lr", "3e-4", "--no-nesterov",
                                      "--keep-last", "--labels", "Edema,Mass", "--precision", "bf16"])
    given = option_values(args, training_options())
    assert given == {"learningRate": 3e-4, "nesterov": False, "keepBest": False, "labels": ["Edema", "Mass"],
                     "precision": "bf16"}
    est = CXREstimator(**given)
    assert est.getEpochs() == 10 and est.getNesterov() is False and est.getLabels() == ["Edema", "Mass"]


def test_each_engine_brings_its_own_rows():
    owners = {o.name: o.owner for o in training_options()}
    assert owners["bigdlEngineType"] == "bigdl"
    assert {n for n, o in owners.items() if o == "torch"} == {"precision", "torchCompile", "torchWorkers"}
    assert all(o == "train" for n, o in owners.items() if n in ("epochs", "engine", "learningRate"))
