"""torchvision's DenseNet-121 (CheXNet's backbone), node names = state-dict keys."""
from __future__ import annotations

from cxrzoo.models.heads import seed_head
from cxrzoo.models.registry import register_model
from cxrzoo.models.spec import NetSpec, SpecBuilder

_GROWTH, _BN_SIZE, _BLOCKS = 32, 4, (6, 12, 24, 16)


def _dense_layer(b: SpecBuilder, p: str, cin: int) -> str:
    x_in = b.last
    b.add(f"{p}.norm1", "bn", channels=cin)
    b.add(f"{p}.relu1", "relu")
    b.add(f"{p}.conv1", "conv", cin=cin, cout=_BN_SIZE * _GROWTH, k=1, stride=1, pad=0, groups=1, bias=False)
    b.add(f"{p}.norm2", "bn", channels=_BN_SIZE * _GROWTH)
    b.add(f"{p}.relu2", "relu")
    new = b.add(f"{p}.conv2", "conv", cin=_BN_SIZE * _GROWTH, cout=_GROWTH, k=3, stride=1, pad=1, groups=1,
                bias=False)
    return b.add(f"{p}.cat", "concat", inputs=(x_in, new))  # torchvision's order: [inputs..., new features]


@register_model("densenet121")
def densenet121(num_classes: int = 14, dropout: float = 0.2, input_size: int = 224) -> NetSpec:
    """DenseNet-121: 7,978,856 parameters with the ImageNet head."""
    b = SpecBuilder(3, input_size)
    b.add("features.conv0", "conv", cin=3, cout=64, k=7, stride=2, pad=3, groups=1, bias=False)
    b.add("features.norm0", "bn", channels=64)
    b.add("features.relu0", "relu")
    b.add("features.pool0", "maxpool", k=3, stride=2, pad=1)
    c = 64
    for i, n in enumerate(_BLOCKS, 1):
        for j in range(1, n + 1):
            _dense_layer(b, f"features.denseblock{i}.denselayer{j}", c)
            c += _GROWTH
        if i < len(_BLOCKS):
            t = f"features.transition{i}"
            b.add(f"{t}.norm", "bn", channels=c)
            b.add(f"{t}.relu", "relu")
            b.add(f"{t}.conv", "conv", cin=c, cout=c // 2, k=1, stride=1, pad=0, groups=1, bias=False)
            b.add(f"{t}.pool", "avgpool", k=2, stride=2)
            c //= 2
    b.add("features.norm5", "bn", channels=c)
    b.add("features.relu5", "relu")
    fc = "classifier" if num_classes == 1000 else "fc"
    return seed_head(b, c, num_classes, dropout if num_classes != 1000 else 0.0, fc=fc)
