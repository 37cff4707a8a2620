"""Classifier heads shared by the registered networks."""
from __future__ import annotations

from cxrzoo.models.spec import NetSpec, SpecBuilder


def seed_head(b: SpecBuilder, channels: int, num_classes: int, dropout: float, fc: str = "fc") -> NetSpec:
    """The seed's head: global average pooling → dropout → dense (logits; the sigmoid is in the loss)."""
    b.add("gap", "gap")
    b.add("flatten", "flatten", channels=channels)
    if dropout > 0:
        b.add("dropout", "dropout", p=dropout)
    b.add(fc, "linear", cin=channels, cout=num_classes)
    return b.build()
