"""A torch network's weights and optimizer state as one safetensors blob (no pickle on either side).

Keys: ``w/<state-dict key>`` for the network's state dict (torchvision names) and
``o/<parameter name>/<slot>`` for each optimizer slot (Adam's ``exp_avg``, ``exp_avg_sq``, ``step``;
SGD's ``momentum_buffer``).  The blob travels from the driver to the barrier tasks and back every
epoch, and is what a checkpoint holds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from cxrzoo.models.weights import CheckpointFormatError, parse_safetensors, safetensors_bytes

FORMAT = "cxrzoo-torch-state/1"


def _params_by_name(net: Any) -> dict[str, Any]:
    return dict(net.named_parameters())


def pack_state(torch: Any, net: Any, optim: Any | None, meta: dict | None = None,
               slots: dict[str, dict[str, np.ndarray]] | None = None) -> bytes:
    """The blob of ``net`` (a SpecNet, not a DDP wrapper) and ``optim``'s per-parameter state (or ``slots``)."""
    tensors = {f"w/{k}": v.detach().cpu().contiguous().numpy() for k, v in net.state_dict().items()}
    if optim is not None:
        names = {id(p): n for n, p in _params_by_name(net).items()}
        for p, d in optim.state.items():
            for slot, v in d.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"o/{names[id(p)]}/{slot}"] = v.detach().cpu().to(torch.float32).contiguous().numpy()
    for name, d in (slots or {}).items():
        for slot, v in d.items():
            tensors[f"o/{name}/{slot}"] = v
    return safetensors_bytes(tensors, {"format": FORMAT, **{k: str(v) for k, v in (meta or {}).items()}})


def unpack(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """(state dict, optimizer slots by parameter, metadata) of a blob."""
    tensors, meta = parse_safetensors(blob, "torch training state")
    if meta.get("format") != FORMAT:
        raise CheckpointFormatError(f"torch training state: format {meta.get('format')!r}, expected {FORMAT!r}")
    weights = {k[2:]: v for k, v in tensors.items() if k.startswith("w/")}
    slots: dict[str, dict[str, np.ndarray]] = {}
    for k, v in tensors.items():
        if k.startswith("o/"):
            name, _, slot = k[2:].rpartition("/")
            slots.setdefault(name, {})[slot] = v
    return weights, slots, meta


def load_into(torch: Any, net: Any, optim: Any | None, blob: bytes) -> dict[str, str]:
    """Copy a blob's weights into ``net`` and its optimizer slots into ``optim``; return its metadata.

    Slots of parameters ``optim`` does not train (frozen layers) are left out.  An empty blob is a no-op.
    """
    if not blob:
        return {}
    weights, slots, meta = unpack(blob)
    own = net.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        raise CheckpointFormatError(f"torch training state does not fit the network: missing {missing[:5]}, "
                                    f"unexpected {extra[:5]}")
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    if optim is not None:
        params = _params_by_name(net)
        trained = {id(p) for g in optim.param_groups for p in g["params"]}
        for name, d in slots.items():
            p = params.get(name)
            if p is None:
                raise CheckpointFormatError(f"torch training state: optimizer state for unknown parameter {name!r}")
            if id(p) in trained:
                optim.state[p] = {slot: torch.from_numpy(np.array(v)) if slot != "step"
                                  else torch.tensor(float(np.asarray(v).reshape(-1)[0]))
                                  for slot, v in d.items()}
    return meta
