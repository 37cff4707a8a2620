"""torchvision's Inception v3 (no auxiliary classifier, ``transform_input=False``), names = state-dict keys.

The auxiliary classifier (``AuxLogits.*``) only shapes training gradients in
torchvision; it is not built here and its checkpoint tensors are skipped on
import, so the parameter count equals ``inception_v3(aux_logits=False)``'s.
"""
from __future__ import annotations

from cxrzoo.models.heads import seed_head
from cxrzoo.models.registry import register_model
from cxrzoo.models.spec import NetSpec, SpecBuilder


def _cat(b: SpecBuilder, name: str, branches: list[str]) -> str:
    x = branches[0]
    for i, br in enumerate(branches[1:], 1):  # pairwise concatenation keeps torchvision's channel order
        x = b.add(f"{name}.cat{i}", "concat", inputs=(x, br))
    return x


def _inception_a(b: SpecBuilder, p: str, cin: int, pool_features: int) -> int:
    x = b.last
    b1 = b.basic_conv(f"{p}.branch1x1", cin, 64, 1, inputs=(x,))
    b.basic_conv(f"{p}.branch5x5_1", cin, 48, 1, inputs=(x,))
    b5 = b.basic_conv(f"{p}.branch5x5_2", 48, 64, 5, pad=2)
    b.basic_conv(f"{p}.branch3x3dbl_1", cin, 64, 1, inputs=(x,))
    b.basic_conv(f"{p}.branch3x3dbl_2", 64, 96, 3, pad=1)
    b3 = b.basic_conv(f"{p}.branch3x3dbl_3", 96, 96, 3, pad=1)
    b.add(f"{p}.avgpool", "avgpool", (x,), k=3, stride=1, pad=1)
    bp = b.basic_conv(f"{p}.branch_pool", cin, pool_features, 1)
    _cat(b, p, [b1, b5, b3, bp])
    return 224 + pool_features


def _inception_b(b: SpecBuilder, p: str, cin: int) -> int:
    x = b.last
    b3 = b.basic_conv(f"{p}.branch3x3", cin, 384, 3, stride=2, inputs=(x,))
    b.basic_conv(f"{p}.branch3x3dbl_1", cin, 64, 1, inputs=(x,))
    b.basic_conv(f"{p}.branch3x3dbl_2", 64, 96, 3, pad=1)
    bd = b.basic_conv(f"{p}.branch3x3dbl_3", 96, 96, 3, stride=2)
    bp = b.add(f"{p}.maxpool", "maxpool", (x,), k=3, stride=2)
    _cat(b, p, [b3, bd, bp])
    return 384 + 96 + cin


def _inception_c(b: SpecBuilder, p: str, cin: int, c7: int) -> int:
    x = b.last
    b1 = b.basic_conv(f"{p}.branch1x1", cin, 192, 1, inputs=(x,))
    b.basic_conv(f"{p}.branch7x7_1", cin, c7, 1, inputs=(x,))
    b.basic_conv(f"{p}.branch7x7_2", c7, c7, (1, 7), pad=(0, 3))
    b7 = b.basic_conv(f"{p}.branch7x7_3", c7, 192, (7, 1), pad=(3, 0))
    b.basic_conv(f"{p}.branch7x7dbl_1", cin, c7, 1, inputs=(x,))
    b.basic_conv(f"{p}.branch7x7dbl_2", c7, c7, (7, 1), pad=(3, 0))
    b.basic_conv(f"{p}.branch7x7dbl_3", c7, c7, (1, 7), pad=(0, 3))
    b.basic_conv(f"{p}.branch7x7dbl_4", c7, c7, (7, 1), pad=(3, 0))
    bd = b.basic_conv(f"{p}.branch7x7dbl_5", c7, 192, (1, 7), pad=(0, 3))
    b.add(f"{p}.avgpool", "avgpool", (x,), k=3, stride=1, pad=1)
    bp = b.basic_conv(f"{p}.branch_pool", cin, 192, 1)
    _cat(b, p, [b1, b7, bd, bp])
    return 768


def _inception_d(b: SpecBuilder, p: str, cin: int) -> int:
    x = b.last
    b.basic_conv(f"{p}.branch3x3_1", cin, 192, 1, inputs=(x,))
    b3 = b.basic_conv(f"{p}.branch3x3_2", 192, 320, 3, stride=2)
    b.basic_conv(f"{p}.branch7x7x3_1", cin, 192, 1, inputs=(x,))
    b.basic_conv(f"{p}.branch7x7x3_2", 192, 192, (1, 7), pad=(0, 3))
    b.basic_conv(f"{p}.branch7x7x3_3", 192, 192, (7, 1), pad=(3, 0))
    b7 = b.basic_conv(f"{p}.branch7x7x3_4", 192, 192, 3, stride=2)
    bp = b.add(f"{p}.maxpool", "maxpool", (x,), k=3, stride=2)
    _cat(b, p, [b3, b7, bp])
    return 320 + 192 + cin


def _inception_e(b: SpecBuilder, p: str, cin: int) -> int:
    x = b.last
    b1 = b.basic_conv(f"{p}.branch1x1", cin, 320, 1, inputs=(x,))
    m = b.basic_conv(f"{p}.branch3x3_1", cin, 384, 1, inputs=(x,))
    a = b.basic_conv(f"{p}.branch3x3_2a", 384, 384, (1, 3), pad=(0, 1), inputs=(m,))
    c = b.basic_conv(f"{p}.branch3x3_2b", 384, 384, (3, 1), pad=(1, 0), inputs=(m,))
    b.basic_conv(f"{p}.branch3x3dbl_1", cin, 448, 1, inputs=(x,))
    m2 = b.basic_conv(f"{p}.branch3x3dbl_2", 448, 384, 3, pad=1)
    d = b.basic_conv(f"{p}.branch3x3dbl_3a", 384, 384, (1, 3), pad=(0, 1), inputs=(m2,))
    e = b.basic_conv(f"{p}.branch3x3dbl_3b", 384, 384, (3, 1), pad=(1, 0), inputs=(m2,))
    b.add(f"{p}.avgpool", "avgpool", (x,), k=3, stride=1, pad=1)
    bp = b.basic_conv(f"{p}.branch_pool", cin, 192, 1)
    _cat(b, p, [b1, a, c, d, e, bp])  # [1x1, cat(2a, 2b), cat(3a, 3b), pool] flattened in order
    return 2048


@register_model("inception_v3")
def inception_v3(num_classes: int = 14, dropout: float = 0.2, input_size: int = 299) -> NetSpec:
    """Inception v3: 23,834,568 parameters with the ImageNet head (inputs from 75²)."""
    b = SpecBuilder(3, input_size)
    b.basic_conv("Conv2d_1a_3x3", 3, 32, 3, stride=2)
    b.basic_conv("Conv2d_2a_3x3", 32, 32, 3)
    b.basic_conv("Conv2d_2b_3x3", 32, 64, 3, pad=1)
    b.add("maxpool1", "maxpool", k=3, stride=2)
    b.basic_conv("Conv2d_3b_1x1", 64, 80, 1)
    b.basic_conv("Conv2d_4a_3x3", 80, 192, 3)
    b.add("maxpool2", "maxpool", k=3, stride=2)
    c = _inception_a(b, "Mixed_5b", 192, 32)
    c = _inception_a(b, "Mixed_5c", c, 64)
    c = _inception_a(b, "Mixed_5d", c, 64)
    c = _inception_b(b, "Mixed_6a", c)
    for name, c7 in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)]:
        c = _inception_c(b, name, c, c7)
    c = _inception_d(b, "Mixed_7a", c)
    c = _inception_e(b, "Mixed_7b", c)
    c = _inception_e(b, "Mixed_7c", c)
    return seed_head(b, c, num_classes, dropout if num_classes != 1000 else 0.5)
