"""Registered networks."""
from __future__ import annotations

from cxrzoo.models.registry import ModelConfig, register_model
from cxrzoo.models.spec import NetSpec, SpecBuilder


def _head(b: SpecBuilder, channels: int, num_classes: int, dropout: float) -> NetSpec:
    """The seed's head: global average pooling → dropout → dense (logits; sigmoid in the loss)."""
    b.add("gap", "gap")
    b.add("flatten", "flatten", channels=channels)
    if dropout > 0:
        b.add("dropout", "dropout", p=dropout)
    b.add("fc", "linear", cin=channels, cout=num_classes)
    return b.build()


@register_model(ModelConfig(name="tiny", input_size=224))
def tiny(num_classes: int = 14, dropout: float = 0.2, input_size: int = 224) -> NetSpec:
    """A 5-stage CNN (≈ 250 k parameters) for tests and demos on 2 cores.

    Four 2× poolings bring a 224² crop down to 7² before global average pooling,
    so a small local sign (a nodule) is not diluted over a large feature map.
    """
    b = SpecBuilder(3, input_size)
    b.conv_bn_relu("conv1", 3, 16, 5, stride=2)
    b.add("pool1", "maxpool", k=2, stride=2)
    b.conv_bn_relu("conv2", 16, 32, 3)
    b.add("pool2", "maxpool", k=2, stride=2)
    b.conv_bn_relu("conv3", 32, 64, 3)
    b.add("pool3", "maxpool", k=2, stride=2)
    b.conv_bn_relu("conv4", 64, 128, 3)
    b.add("pool4", "maxpool", k=2, stride=2)
    b.conv_bn_relu("conv5", 128, 128, 3)
    return _head(b, 128, num_classes, dropout)
