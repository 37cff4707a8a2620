"""Registered networks: ``tiny`` and ``mobilenet_v2`` here; the other backbones register from their modules."""
from __future__ import annotations

from cxrzoo.models import densenet, inception, resnet, vgg  # noqa: F401  (register themselves)
from cxrzoo.models.heads import seed_head as _head
from cxrzoo.models.registry import register_model
from cxrzoo.models.spec import NetSpec, SpecBuilder


@register_model("tiny")
def tiny(num_classes: int = 14, dropout: float = 0.2, input_size: int = 224) -> NetSpec:
    """A 5-stage CNN (≈ 250 k parameters) for tests and demos on 2 cores.

    A stride-2 stem and three 2× poolings bring a 224² crop down to a 14² feature map: its 64-pixel
    cells (of a 1,024-pixel image) let the class activation map point at a nodule, where 7² cells of
    128 pixels could not.  ``pool4`` is a 3×3 max filter at stride 1: it widens the receptive field for
    whole-organ signs (the heart's size) and spreads a small sign over 3×3 cells, so that global
    average pooling over 196 cells does not dilute it.  On the recipe benchmark (torch engine) its
    pointing game beats the image centre on all 9 labels with boxes (8 with the earlier 7² layout, a 2×
    ``pool4``) at the same mean AUC (0.904–0.921 over two runs, against 0.907–0.909).
    """
    b = SpecBuilder(3, input_size)
    b.conv_bn_relu("conv1", 3, 16, 5, stride=2)
    b.add("pool1", "maxpool", k=2, stride=2)
    b.conv_bn_relu("conv2", 16, 32, 3)
    b.add("pool2", "maxpool", k=2, stride=2)
    b.conv_bn_relu("conv3", 32, 64, 3)
    b.add("pool3", "maxpool", k=2, stride=2)
    b.conv_bn_relu("conv4", 64, 128, 3)
    b.add("pool4", "maxpool", k=3, stride=1, pad=1)
    b.conv_bn_relu("conv5", 128, 128, 3)
    return _head(b, 128, num_classes, dropout)


# (expansion t, output channels c, repeats n, first stride s), as in torchvision's MobileNetV2
_MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1)]


@register_model("mobilenet_v2")
def mobilenet_v2(num_classes: int = 14, dropout: float = 0.2, input_size: int = 224) -> NetSpec:
    """torchvision's MobileNetV2 (3,504,872 parameters with the ImageNet head), node names = state-dict keys.

    With ``num_classes=1000`` the classifier is ``classifier.1`` so that an ImageNet checkpoint loads
    whole; otherwise it is the 14-way ``fc`` head.
    """
    b = SpecBuilder(3, input_size)
    x = b.conv_bn("features.0", 3, 32, 3, stride=2)
    cin, idx = 32, 1
    for t, c, n, s in _MOBILENET_V2:
        for i in range(n):
            stride, hidden, p = (s if i == 0 else 1), cin * t, f"features.{idx}.conv"
            block_in, j = x, 0
            if t != 1:
                x = b.conv_bn(f"{p}.0", cin, hidden, 1)
                j = 1
            x = b.conv_bn(f"{p}.{j}", hidden, hidden, 3, stride=stride, groups=hidden)
            b.add(f"{p}.{j + 1}", "conv", cin=hidden, cout=c, k=1, stride=1, pad=0, groups=1, bias=False)
            x = b.add(f"{p}.{j + 2}", "bn", channels=c, eps=1e-5)
            if stride == 1 and cin == c:
                x = b.add(f"features.{idx}.add", "add", inputs=(block_in, x))
            cin, idx = c, idx + 1
    b.conv_bn(f"features.{idx}", cin, 1280, 1)
    if num_classes == 1000:  # torchvision's classifier: Dropout(0.2) then classifier.1
        return _head(b, 1280, num_classes, 0.2, fc="classifier.1")
    return _head(b, 1280, num_classes, dropout)
