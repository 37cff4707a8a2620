"""The fuzzers' child runner: an infinite loop is a hang and a dead child a crash, and the run goes on."""
import os
import signal

import pytest
from _fuzzchild import ChildRunner  # benchmarks/

pytestmark = pytest.mark.profile("spark4")  # the runner and the PNG reader under it: the same in both profiles


def _worker(payload, _workdir):
    if payload == "loop":
        while True:
            pass
    if payload == "die":
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"outcome": "done", "value": payload * 2}


def test_hangs_and_deaths_are_outcomes_not_stalls():
    with ChildRunner(_worker, limit=1.0, warmup=[0]) as runner:
        assert runner.call(21) == {"outcome": "done", "value": 42}
        res = runner.call("loop")
        assert res["outcome"] == "hang" and 1.0 <= runner.last_seconds < 5.0
        assert runner.call(2) == {"outcome": "done", "value": 4}  # a new child took over
        res = runner.call("die")
        assert res["outcome"] == "crash" and f"exit code {-signal.SIGSEGV}" in res["reason"]
        assert runner.call(3)["value"] == 6


def test_short_png_fuzz_run_with_nih_size_seeds():
    """benchmarks/fuzz_png.py's run (the full one is >= 1,000,000 inputs): each input in the child under the
    limit; every 5th here from a 1024² seed."""
    from fuzz_png import run

    res = run(600, seed=1, hang_seconds=10.0, big_every=5)
    assert res["inputs"] == 600 and res["big_inputs"] == 120
    assert res["crashes"] == 0 and res["hangs"] == 0, res["crash_examples"]
    assert res["decoded"] > 20 and res["rejected"] > 300
