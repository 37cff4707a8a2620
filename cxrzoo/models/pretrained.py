"""Map a torchvision-layout state dict onto a NetSpec's nodes, checking every name and shape.

Node names are the state-dict prefixes, so ``features.0.0.weight`` is node
``features.0.0``, kind ``weight``.  Batch-norm running statistics come along;
``num_batches_tracked`` counters are ignored.  When the network gets a new head
(any class count other than ImageNet's 1000), the checkpoint's ImageNet classifier
(the config's ``imagenet_head`` prefixes) is dropped and the new head keeps its
fresh initialisation; auxiliary heads the network does not build (Inception's
``AuxLogits``) are dropped too.  Anything else that does not fit is listed, all
at once, in one :class:`CheckpointMismatchError`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cxrzoo.models.registry import ModelConfig
from cxrzoo.models.spec import NetSpec, param_shapes
from cxrzoo.models.weights import load_state_dict
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)
Weights = dict[str, dict[str, np.ndarray]]


class CheckpointMismatchError(InputError):
    """A checkpoint's tensors do not fit the network (every problem listed)."""


def _under(node: str, prefixes: tuple[str, ...]) -> bool:
    return any(node == p or node.startswith(p + ".") for p in prefixes)


def map_state_dict(spec: NetSpec, config: ModelConfig, state: dict[str, np.ndarray]) -> tuple[Weights, list[str]]:
    """Weights by node for ``spec`` from ``state``; also the names of the checkpoint tensors left out.

    Raises
    ------
    CheckpointMismatchError
        Listing missing tensors, tensors of the wrong shape and tensors the network has no place for.
    """
    shapes = param_shapes(spec)
    new_head = spec.output.attrs["cout"] != 1000
    weights: Weights = {}
    dropped, unexpected, wrong, missing = [], [], [], []
    for key, value in state.items():
        node, _, kind = key.rpartition(".")
        if kind == "num_batches_tracked":
            continue
        if _under(node, config.imagenet_head) and (new_head or node not in shapes):
            dropped.append(key)
            continue
        want = shapes.get(node, {}).get(kind)
        if want is None:
            unexpected.append(f"{key}: no such tensor in {config.name}")
        elif tuple(value.shape) != want:
            wrong.append(f"{key}: shape {tuple(value.shape)}, the network has {want}")
        else:
            weights.setdefault(node, {})[kind] = np.ascontiguousarray(value, dtype=np.float32)
    for node, kinds in shapes.items():
        if new_head and _under(node, (spec.output.name,)):
            continue  # the new head is initialised, not loaded
        for kind, want in kinds.items():
            if kind not in weights.get(node, {}) and not any(m.startswith(f"{node}.{kind}:") for m in wrong):
                missing.append(f"{node}.{kind}: missing from the checkpoint (expected {want})")
    problems = wrong + missing + unexpected
    if problems:
        raise CheckpointMismatchError(
            f"the checkpoint does not fit {config.name}: {len(wrong)} wrong shape(s), {len(missing)} missing, "
            f"{len(unexpected)} unexpected tensor(s) (is it a {config.name} checkpoint in torchvision's layout?):"
            "\n  " + "\n  ".join(problems))
    return weights, dropped


def load_pretrained(spec: NetSpec, config: ModelConfig, path: str | Path) -> Weights:
    """Read ``path`` (.pth or .safetensors, no pickle code executed) and map it onto ``spec``."""
    weights, dropped = map_state_dict(spec, config, load_state_dict(path))
    if dropped:
        log.info("%s: left out %d checkpoint tensors of the ImageNet/auxiliary heads (%s, ...)", config.name,
                 len(dropped), dropped[0])
    return weights
