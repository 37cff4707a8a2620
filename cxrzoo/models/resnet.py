"""torchvision's ResNet-50 (v1.5: stride in the 3×3 convolution), node names = state-dict keys."""
from __future__ import annotations

from cxrzoo.models.heads import seed_head
from cxrzoo.models.registry import register_model
from cxrzoo.models.spec import NetSpec, SpecBuilder


def _conv(b: SpecBuilder, name: str, cin: int, cout: int, k: int, stride: int = 1, inputs=None) -> str:
    b.add(name, "conv", inputs, cin=cin, cout=cout, k=k, stride=stride, pad=k // 2, groups=1, bias=False)
    return name


def _bottleneck(b: SpecBuilder, p: str, cin: int, planes: int, stride: int) -> str:
    x_in = b.last
    _conv(b, f"{p}.conv1", cin, planes, 1)
    b.add(f"{p}.bn1", "bn", channels=planes)
    b.add(f"{p}.relu1", "relu")
    _conv(b, f"{p}.conv2", planes, planes, 3, stride)
    b.add(f"{p}.bn2", "bn", channels=planes)
    b.add(f"{p}.relu2", "relu")
    _conv(b, f"{p}.conv3", planes, planes * 4, 1)
    main = b.add(f"{p}.bn3", "bn", channels=planes * 4)
    short = x_in
    if stride != 1 or cin != planes * 4:
        _conv(b, f"{p}.downsample.0", cin, planes * 4, 1, stride, inputs=(x_in,))
        short = b.add(f"{p}.downsample.1", "bn", channels=planes * 4)
    b.add(f"{p}.add", "add", inputs=(short, main))
    return b.add(f"{p}.relu", "relu")


@register_model("resnet50")
def resnet50(num_classes: int = 14, dropout: float = 0.2, input_size: int = 224) -> NetSpec:
    """ResNet-50: 25,557,032 parameters with the ImageNet head (the seed's backbone)."""
    b = SpecBuilder(3, input_size)
    _conv(b, "conv1", 3, 64, 7, 2)
    b.add("bn1", "bn", channels=64)
    b.add("relu", "relu")
    b.add("maxpool", "maxpool", k=3, stride=2, pad=1)
    cin = 64
    for layer, (blocks, planes, stride) in enumerate([(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)], 1):
        for i in range(blocks):
            _bottleneck(b, f"layer{layer}.{i}", cin, planes, stride if i == 0 else 1)
            cin = planes * 4
    return seed_head(b, 2048, num_classes, dropout if num_classes != 1000 else 0.0)
