"""torchvision's VGG-16 (configuration D, no batch norm), node names = state-dict keys."""
from __future__ import annotations

from cxrzoo.models.heads import seed_head
from cxrzoo.models.registry import register_model
from cxrzoo.models.spec import NetSpec, SpecBuilder, spatial_sizes
from cxrzoo.errors import InputError

_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


@register_model("vgg16")
def vgg16(num_classes: int = 14, dropout: float = 0.2, input_size: int = 224) -> NetSpec:
    """VGG-16: 138,357,544 parameters with the ImageNet classifier (which needs a 224² input).

    The 14-way head cuts at pool5 as the seed does: global pooling, dropout, dense.
    """
    b = SpecBuilder(3, input_size)
    cin = 3
    for i, v in enumerate(_CFG):
        idx = sum(1 if x == "M" else 2 for x in _CFG[:i])  # torchvision's index in `features`
        if v == "M":
            b.add(f"features.{idx}", "maxpool", k=2, stride=2)
        else:
            b.add(f"features.{idx}", "conv", cin=cin, cout=v, k=3, stride=1, pad=1, groups=1, bias=True)
            b.add(f"features.{idx + 1}", "relu")
            cin = v
    if num_classes != 1000:
        return seed_head(b, 512, num_classes, dropout)
    side = spatial_sizes(b.build())[b.last]
    if side != 7:
        raise InputError(f"VGG-16's ImageNet classifier needs 7x7 pool5 maps (224² input), got {side}x{side}")
    b.add("flatten", "flatten", channels=512 * 7 * 7)
    for j, (cin_, cout) in zip((0, 3, 6), [(25088, 4096), (4096, 4096), (4096, 1000)]):
        b.add(f"classifier.{j}", "linear", cin=cin_, cout=cout)
        if j < 6:
            b.add(f"classifier.{j + 1}", "relu")
            b.add(f"classifier.{j + 2}", "dropout", p=0.5)
    return b.build()
