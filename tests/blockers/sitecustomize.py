"""Put on PYTHONPATH by tests/test_engine_neutral.py: every Python process (driver and Spark's workers)
then fails to import BigDL, as on a machine where it is not installed."""
import sys


class _NoBigDL:
    """A meta-path finder that refuses ``bigdl`` and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == "bigdl" or name.startswith("bigdl."):
            raise ImportError(f"{name} is blocked (tests/blockers/sitecustomize.py)")
        return None


sys.meta_path.insert(0, _NoBigDL())
