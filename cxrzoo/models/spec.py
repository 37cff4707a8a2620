"""An engine-neutral description of a network: a small graph of named nodes.

A :class:`NetSpec` lists :class:`Node` objects in topological order.  Each node
has an op (``conv``, ``bn``, ``relu``, ``relu6``, ``maxpool``, ``avgpool``, ``gap``,
``flatten``, ``dropout``, ``linear``, ``add``, ``concat``), the names of its inputs
(the previous node when omitted) and its attributes.  Kernel sizes and paddings
are an int or an (h, w) pair (Inception's 1×7 convolutions); feature maps stay
square.  :func:`param_shapes` says which tensors each node owns, in torchvision's
layout, for weight import, export and parameter counts.  Engines build their own
network from it (:mod:`cxrzoo.engine`), and the OpenVINO exporter builds the
same graph from it plus the trained weights, so the two agree by
construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from difflib import get_close_matches
from types import MappingProxyType
from typing import Any, Mapping

from cxrzoo.errors import InputError

OPS = frozenset({"input", "conv", "bn", "relu", "relu6", "maxpool", "avgpool", "gap", "flatten", "dropout",
                 "linear", "add", "concat"})


def pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """An int or an (h, w) pair as (h, w)."""
    if isinstance(v, int):
        return v, v
    h, w = v
    return int(h), int(w)


@dataclass(frozen=True)
class Node:
    """One operation of a network."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InputError(f"node {self.name!r}: unknown op {self.op!r}; known ops: {sorted(OPS)}")
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    def __reduce__(self):  # a mappingproxy does not pickle; specs travel to Spark's Python workers
        return Node, (self.name, self.op, self.inputs, dict(self.attrs))


@dataclass(frozen=True)
class NetSpec:
    """A network as a list of nodes; the first is the input, the last the output (logits)."""

    nodes: tuple[Node, ...]
    in_channels: int
    input_size: int

    def node(self, name: str) -> Node:
        """Return the node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def output(self) -> Node:
        """The output node."""
        return self.nodes[-1]

    @property
    def num_classes(self) -> int:
        """Width of the logits: the output size of the last linear layer."""
        return int(next(n for n in reversed(self.nodes) if n.op == "linear").attrs["cout"])


class SpecBuilder:
    """Append nodes, each fed by the previous one unless ``inputs`` says otherwise."""

    def __init__(self, in_channels: int, input_size: int):
        self._nodes: list[Node] = [Node("input", "input", (), {"channels": in_channels})]
        self._names = {"input"}
        self.in_channels = in_channels
        self.input_size = input_size

    @property
    def last(self) -> str:
        """Name of the most recently added node."""
        return self._nodes[-1].name

    def add(self, name: str, op: str, inputs: tuple[str, ...] | None = None, **attrs: Any) -> str:
        """Add a node and return its name."""
        if name in self._names:
            raise InputError(f"duplicate node name {name!r}")
        ins = inputs if inputs is not None else (self.last,)
        for i in ins:
            if i not in self._names:
                raise InputError(f"node {name!r}: unknown input {i!r}")
        self._nodes.append(Node(name, op, tuple(ins), attrs))
        self._names.add(name)
        return name

    def conv_bn_relu(self, name: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
        """A convolution without bias, batch norm and ReLU."""
        self.add(name, "conv", cin=cin, cout=cout, k=k, stride=stride, pad=k // 2, groups=1, bias=False)
        self.add(f"{name}_bn", "bn", channels=cout, eps=1e-5)
        return self.add(f"{name}_relu", "relu")

    def basic_conv(self, prefix: str, cin: int, cout: int, k, stride: int = 1, pad=0, eps: float = 1e-3,
                   inputs: tuple[str, ...] | None = None) -> str:
        """torchvision's Inception ``BasicConv2d``: ``prefix.conv`` (no bias), ``prefix.bn``, ReLU."""
        self.add(f"{prefix}.conv", "conv", inputs, cin=cin, cout=cout, k=k, stride=stride, pad=pad, groups=1,
                 bias=False)
        self.add(f"{prefix}.bn", "bn", channels=cout, eps=eps)
        return self.add(f"{prefix}.relu", "relu")

    def conv_bn(self, prefix: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                act: str | None = "relu6", inputs: tuple[str, ...] | None = None) -> str:
        """torchvision's ``Conv2dNormActivation`` named as its state dict is: ``prefix.0`` conv, ``prefix.1`` bn."""
        self.add(f"{prefix}.0", "conv", inputs, cin=cin, cout=cout, k=k, stride=stride, pad=(k - 1) // 2,
                 groups=groups, bias=False)
        out = self.add(f"{prefix}.1", "bn", channels=cout, eps=1e-5)
        return self.add(f"{prefix}.act", act) if act else out

    def build(self) -> NetSpec:
        """Freeze the node list into a :class:`NetSpec`."""
        return NetSpec(tuple(self._nodes), self.in_channels, self.input_size)


def spatial_sizes(spec: NetSpec) -> dict[str, int]:
    """Side length of each node's output feature map (1 after global pooling)."""
    size: dict[str, int] = {}
    for n in spec.nodes:
        a = n.attrs
        if n.op == "input":
            size[n.name] = spec.input_size
            continue
        s = size[n.inputs[0]]
        if n.op in ("conv", "maxpool", "avgpool"):
            (kh, kw), (ph, pw), st = pair(a["k"]), pair(a.get("pad", 0)), a["stride"]
            s, sw = (s + 2 * ph - kh) // st + 1, (s + 2 * pw - kw) // st + 1
            if s != sw:
                raise InputError(f"node {n.name!r}: non-square output {s}x{sw}")
        elif n.op in ("gap", "flatten", "linear"):
            s = 1
        elif n.op in ("add", "concat") and any(size[i] != s for i in n.inputs):
            raise InputError(f"node {n.name!r}: inputs of sizes {[size[i] for i in n.inputs]}")
        if s < 1:
            raise InputError(f"node {n.name!r}: input {spec.input_size}² is too small for this network")
        size[n.name] = s
    return size


def param_shapes(spec: NetSpec) -> dict[str, dict[str, tuple[int, ...]]]:
    """The tensors each node owns, in torchvision's layout: conv ``weight`` (O, I/g, kh, kw) and ``bias``;
    bn ``weight``, ``bias``, ``running_mean``, ``running_var``; linear ``weight`` (O, I) and ``bias``."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for n in spec.nodes:
        a = n.attrs
        if n.op == "conv":
            kh, kw = pair(a["k"])
            d = {"weight": (a["cout"], a["cin"] // a.get("groups", 1), kh, kw)}
            if a.get("bias", True):
                d["bias"] = (a["cout"],)
            out[n.name] = d
        elif n.op == "bn":
            out[n.name] = {k: (a["channels"],) for k in ("weight", "bias", "running_mean", "running_var")}
        elif n.op == "linear":
            out[n.name] = {"weight": (a["cout"], a["cin"]), "bias": (a["cout"],)}
    return out


def count_params(spec: NetSpec) -> int:
    """Trainable parameters (batch-norm running statistics excluded, as torch's ``parameters()``)."""
    total = 0
    for kinds in param_shapes(spec).values():
        for kind, shape in kinds.items():
            if kind not in ("running_mean", "running_var"):
                n = 1
                for d in shape:
                    n *= d
                total += n
    return total


class UnknownLayerError(InputError):
    """A layer name (e.g. ``freezeUpTo``) that the network does not have."""


def layers_up_to(spec: NetSpec, name: str) -> list[str]:
    """Nodes with parameters from the input up to ``name`` (inclusive): what freezing "up to" a layer covers.

    Raises
    ------
    UnknownLayerError
        The network has no node ``name``; the message lists some of the nodes it has.
    """
    by_name = {n.name: n for n in spec.nodes}
    if name not in by_name:
        names = [n.name for n in spec.nodes[1:]]  # the input node cannot be frozen
        shown = names if len(names) <= 12 else names[:4] + ["..."] + names[-8:]
        close = get_close_matches(name, names, n=3)
        raise UnknownLayerError(f"no layer {name!r} in the network ({len(names)} layers); "
                                + (f"did you mean {', '.join(close)}? " if close else "")
                                + "valid names include " + ", ".join(shown))
    seen, stack = set(), [name]
    while stack:
        cur = stack.pop()
        if cur not in seen:
            seen.add(cur)
            stack.extend(by_name[cur].inputs)
    owners = param_shapes(spec)
    return [n.name for n in spec.nodes if n.name in seen and n.name in owners]
