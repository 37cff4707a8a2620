"""BigDL optimizer state ⇄ safetensors + JSON: checkpoints that a resume reads without deserializing objects.

BigDL keeps an optimizer's state in a ``Table``: tensors (Adam's moments ``s``, ``r``, ``denom``; SGD's
momentum buffer ``dfdx``) and scalar counters (``evalCounter``, ``neval``, ``epoch``, …).  The driver's
optim method holds the counters; each training partition's own optim method (a
``Map[modelName, OptimMethod]`` per partition) holds the moments of its slice of the parameters.

Written as ``optim.safetensors`` (every tensor, keyed ``partitions.<i>.<model>.<key>``) and ``optim.json``
(the scalars and the layout).  Integer counters are restored exactly; float entries (the last ``Loss`` and
``score``) are kept for the record only, as BigDL overwrites both on every iteration before reading them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cxrzoo.models.weights import load_safetensors, save_safetensors
from cxrzoo.errors import InputError

FORMAT = "cxrzoo-bigdl-optim/1"
TENSORS, MANIFEST = "optim.safetensors", "optim.json"
LEGACY = ("optim_driver.ser", "optim_partitions.ser")  # Java-serialized state of cxrzoo before 0.2


class OptimStateError(InputError):
    """A checkpoint's optimizer state cannot be read (an old format, or files that do not fit)."""


def _is_tensor(value: Any) -> bool:
    from py4j.java_gateway import JavaObject

    return isinstance(value, JavaObject) and "Tensor" in value.getClass().getName()


def _to_numpy(tensor: Any) -> np.ndarray:
    from bigdl.dllib.utils.common import callBigDlFunc

    return np.asarray(callBigDlFunc("float", "toJTensor", tensor).to_ndarray(), np.float32)


def _to_tensor(array: np.ndarray) -> Any:
    from bigdl.dllib.utils.common import JTensor, callBigDlFunc

    return callBigDlFunc("float", "toTensor", JTensor.from_ndarray(np.ascontiguousarray(array, np.float32)))


def _split(table: Any, prefix: str, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """The table's scalars (JSON-ready); its tensors go into ``tensors`` under ``prefix``."""
    scalars: dict[str, Any] = {}
    it = table.keySet().iterator()
    while it.hasNext():
        key = str(it.next())
        value = table.apply(key)
        if _is_tensor(value):
            tensors[f"{prefix}.{key}"] = _to_numpy(value)
        elif isinstance(value, (bool, int, float, str)):
            scalars[key] = value
        else:
            raise OptimStateError(f"optimizer state entry {key!r} has a type this format does not keep: "
                                  f"{type(value).__name__}")
    return scalars


def _fill(table: Any, scalars: dict[str, Any], tensors: dict[str, np.ndarray], prefix: str) -> None:
    for key, value in scalars.items():
        if isinstance(value, bool) or isinstance(value, (int, str)):
            table.update(key, value)  # py4j: int → java.lang.Integer, as BigDL's counters are
    for name, array in tensors.items():
        if name.startswith(prefix + "."):
            table.update(name[len(prefix) + 1:], _to_tensor(array))


def dump(path: Path, driver: Any, parts: list | None, scala_values: Callable, method: str) -> None:
    """Write the driver's optim method and the per-partition ones into the directory ``path``."""
    tensors: dict[str, np.ndarray] = {}
    layout = []
    for i, m in enumerate(parts or []):
        keys = m.keySet().iterator()
        entry = {}
        for value in scala_values(m):
            name = str(keys.next())
            entry[name] = _split(value.state(), f"partitions.{i}.{name}", tensors)
        layout.append(entry)
    manifest = {"format": FORMAT, "method": method, "driver": _split(driver.state(), "driver", tensors),
                "partitions": layout if parts is not None else None}
    save_safetensors(path / TENSORS, tensors, metadata={"format": FORMAT})
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def load(path: Path, new_method: Callable[[], Any], method: str, sc: Any) -> tuple[Any, Any]:
    """The driver's optim method and the per-partition state (``java.util.ArrayList`` of Scala maps) that
    :func:`dump` wrote, rebuilt on fresh optim methods from ``new_method()``.

    Raises
    ------
    OptimStateError
        Java-serialized state of an earlier cxrzoo, or a manifest of another format or optimizer.
    """
    if not (path / MANIFEST).is_file():
        if any((path / name).exists() for name in LEGACY):
            raise OptimStateError(
                f"{path} holds Java-serialized optimizer state written by cxrzoo before 0.2, which is no longer "
                "read (deserializing it could run code). Start the run again in a new checkpoint directory, or "
                "delete this one; to finish the old run, use the cxrzoo version that wrote it")
        raise OptimStateError(f"{path} has no {MANIFEST}: not a checkpoint of the BigDL engine")
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise OptimStateError(f"{path / MANIFEST}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("method") != method:
        raise OptimStateError(f"{path} holds {manifest.get('method')} state; this run uses {method}")
    tensors = dict(load_safetensors(path / TENSORS))
    driver = new_method()
    _fill(driver.state(), manifest["driver"], tensors, "driver")
    if manifest["partitions"] is None:
        return driver, None
    parts = sc._jvm.java.util.ArrayList()
    map1 = getattr(sc._jvm.scala.collection.immutable, "Map$Map1")
    for i, entry in enumerate(manifest["partitions"]):
        if len(entry) != 1:
            raise OptimStateError(f"{path}: partition {i} has {len(entry)} models; this engine trains one")
        (name, scalars), = entry.items()
        part = new_method()
        _fill(part.state(), scalars, tensors, f"partitions.{i}.{name}")
        parts.add(map1(name, part))
    return driver, parts
