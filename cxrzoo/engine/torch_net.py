"""A :class:`~cxrzoo.models.spec.NetSpec` as a ``torch.nn.Module`` whose state dict has torchvision's names.

Nodes with parameters become ``nn.Conv2d``, ``nn.BatchNorm2d`` and ``nn.Linear`` modules placed at their
node names (``features.0.0`` is child ``0`` of child ``0`` of child ``features``), so the state dict
of a registry backbone is keyed exactly as torchvision's and a torchvision ``.pth`` loads into it with
``load_state_dict``.  Parameter-free nodes run as functions in ``forward``, which walks the nodes in
the spec's (topological) order.  No torchvision import.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrzoo.models.spec import NetSpec, pair, spatial_sizes
from cxrzoo.errors import InputError

_KINDS = ("weight", "bias", "running_mean", "running_var")


class _Tree(nn.Module):
    """A container whose children are named by one component of a dotted node name."""


def _place(root: nn.Module, name: str, module: nn.Module) -> None:
    parts = name.split(".")
    cur = root
    for p in parts[:-1]:
        child = cur._modules.get(p)
        if child is None:
            child = _Tree()
            cur.add_module(p, child)
        elif not isinstance(child, _Tree):
            raise InputError(f"node {name!r} lies under the layer {p!r}: node names must form a tree")
        cur = child
    if parts[-1] in cur._modules:
        raise InputError(f"node {name!r}: a layer has this name already (or names below it)")
    cur.add_module(parts[-1], module)


def _layer(n) -> nn.Module | None:
    a = n.attrs
    if n.op == "conv":
        return nn.Conv2d(a["cin"], a["cout"], pair(a["k"]), a["stride"], pair(a["pad"]), groups=a.get("groups", 1),
                         bias=a.get("bias", True))
    if n.op == "bn":
        return nn.BatchNorm2d(a["channels"], eps=a.get("eps", 1e-5))
    if n.op == "linear":
        return nn.Linear(a["cin"], a["cout"])
    return None


class SpecNet(nn.Module):
    """The network of ``spec``: N×C×S×S float input, N×classes logits."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        spatial_sizes(spec)  # refuses inputs too small for the network
        self.spec = spec
        self._layer_names: dict[str, str] = {}
        self._plan: list[tuple[str, str, tuple[str, ...], dict[str, Any]]] = []
        for n in spec.nodes:
            m = _layer(n)
            if m is not None:
                _place(self, n.name, m)
            self._plan.append((n.name, n.op, tuple(n.inputs), dict(n.attrs)))
        self._modules_by_node = {n.name: self.get_submodule(n.name) for n in spec.nodes if _layer_kind(n.op)}

    def layer(self, name: str) -> nn.Module:
        """The module of node ``name`` (a conv, bn or linear node)."""
        return self._modules_by_node[name]

    def l2_parameters(self) -> list[tuple[list[nn.Parameter], float]]:
        """(parameters, L2 factor) of each linear node that carries one (the spec's ``l2``)."""
        return [(list(self._modules_by_node[name].parameters()), float(a["l2"]))
                for name, op, _, a in self._plan if op == "linear" and a.get("l2")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: C901 - one branch per op
        out: dict[str, torch.Tensor] = {}
        for name, op, ins, a in self._plan:
            if op == "input":
                out[name] = x
                continue
            h = out[ins[0]]
            if op in ("conv", "bn", "linear"):
                y = self._modules_by_node[name](h)
            elif op == "relu":
                y = F.relu(h)
            elif op == "relu6":
                y = F.relu6(h)
            elif op == "maxpool":
                y = F.max_pool2d(h, a["k"], a["stride"], a.get("pad", 0))
            elif op == "avgpool":
                y = F.avg_pool2d(h, a["k"], a["stride"], a.get("pad", 0), count_include_pad=True)
            elif op == "gap":
                y = F.adaptive_avg_pool2d(h, 1)
            elif op == "flatten":
                y = torch.flatten(h, 1)
            elif op == "dropout":
                y = F.dropout(h, a["p"], self.training)
            elif op == "add":
                y = h
                for i in ins[1:]:
                    y = y + out[i]
            elif op == "concat":
                y = torch.cat([out[i] for i in ins], 1)
            else:  # pragma: no cover - NetSpec validates ops
                raise InputError(op)
            out[name] = y
        return out[self._plan[-1][0]]


def _layer_kind(op: str) -> bool:
    return op in ("conv", "bn", "linear")


def node_weights(net: SpecNet) -> dict[str, dict[str, np.ndarray]]:
    """Parameters and batch-norm statistics by node name, as float32 numpy arrays (torchvision layout)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, m in net._modules_by_node.items():
        d = {}
        for kind in _KINDS:
            t = getattr(m, kind, None)
            if isinstance(t, torch.Tensor):
                d[kind] = t.detach().to(torch.float32).cpu().numpy().copy()
        out[name] = d
    return out


def set_node_weights(net: SpecNet, weights: dict[str, dict[str, np.ndarray]]) -> None:
    """Copy ``{node: {kind: array}}`` into the network, checking names and shapes."""
    with torch.no_grad():
        for name, kinds in weights.items():
            m = net._modules_by_node.get(name)
            if m is None:
                raise KeyError(f"{name!r} is not a layer with parameters in this network")
            for kind, arr in kinds.items():
                t = getattr(m, kind, None)
                if not isinstance(t, torch.Tensor):
                    raise KeyError(f"{name}.{kind}: the layer has no such tensor")
                src = torch.from_numpy(np.ascontiguousarray(arr, np.float32))
                if tuple(src.shape) != tuple(t.shape):
                    raise InputError(f"{name}.{kind}: shape {tuple(src.shape)}, the network has {tuple(t.shape)}")
                t.copy_(src)


def build(spec: NetSpec, seed: int = 0) -> SpecNet:
    """A freshly initialised network (torch's default initialisation, seeded)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return SpecNet(spec)
    finally:
        torch.random.set_rng_state(gen_state)
