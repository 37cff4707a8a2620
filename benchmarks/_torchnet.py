"""A NetSpec as a PyTorch module (eager), for the training benchmark's PyTorch baseline."""
from __future__ import annotations

import torch
from torch import nn

from cxrzoo.models.spec import NetSpec, pair


class SpecNet(nn.Module):
    """Runs the nodes of ``spec`` in order; parameterised nodes are torch layers named after the node."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleDict()
        for n in spec.nodes:
            a, key = n.attrs, n.name.replace(".", "_")
            if n.op == "conv":
                self.layers[key] = nn.Conv2d(a["cin"], a["cout"], pair(a["k"]), a["stride"], pair(a["pad"]),
                                             groups=a.get("groups", 1), bias=a.get("bias", True))
            elif n.op == "bn":
                self.layers[key] = nn.BatchNorm2d(a["channels"], eps=a.get("eps", 1e-5))
            elif n.op == "linear":
                self.layers[key] = nn.Linear(a["cin"], a["cout"])
            elif n.op == "maxpool":
                self.layers[key] = nn.MaxPool2d(a["k"], a["stride"], a.get("pad", 0))
            elif n.op == "avgpool":
                self.layers[key] = nn.AvgPool2d(a["k"], a["stride"], a.get("pad", 0))
            elif n.op == "dropout":
                self.layers[key] = nn.Dropout(a["p"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = {"input": x}
        for n in self.spec.nodes[1:]:
            ins = [out[i] for i in n.inputs]
            key = n.name.replace(".", "_")
            if key in self.layers:
                y = self.layers[key](ins[0])
            elif n.op == "relu":
                y = torch.relu(ins[0])
            elif n.op == "relu6":
                y = torch.clamp(ins[0], 0, 6)
            elif n.op == "gap":
                y = ins[0].mean((2, 3), keepdim=True)
            elif n.op == "flatten":
                y = torch.flatten(ins[0], 1)
            elif n.op == "add":
                y = ins[0] + ins[1]
            elif n.op == "concat":
                y = torch.cat(ins, 1)
            else:
                raise ValueError(n.op)
            out[n.name] = y
        return out[self.spec.output.name]
