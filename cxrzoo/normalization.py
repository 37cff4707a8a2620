"""Channel normalization constants, the one source for preprocessing, the model registry and export."""
from __future__ import annotations

from cxrzoo.errors import InputError

Triple = tuple[float, float, float]

CAFFE_MEAN: Triple = (123.68, 116.779, 103.939)  # the seed's mean subtraction, on 0-255 pixels
IMAGENET_MEAN: Triple = (123.675, 116.28, 103.53)  # torchvision's ImageNet normalization, on 0-255 pixels
IMAGENET_STD: Triple = (58.395, 57.12, 57.375)
UNIT_STD: Triple = (1.0, 1.0, 1.0)

NORMALIZATIONS: dict[str, tuple[Triple, Triple]] = {
    # per output channel: (mean, std) on 0–255 pixels
    "caffe": (CAFFE_MEAN, UNIT_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}


def normalization_of(mean: Triple, std: Triple) -> str:
    """The name of the normalization with these constants."""
    for name, (m, s) in NORMALIZATIONS.items():
        if tuple(m) == tuple(mean) and tuple(s) == tuple(std):
            return name
    raise InputError(f"no named normalization has mean {mean} and std {std}; known: {sorted(NORMALIZATIONS)}")
