"""The model registry: builders register by name; configs are frozen."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from cxrzoo.labels import LABELS
from cxrzoo.models.spec import NetSpec


IMAGENET_MEAN = (123.675, 116.28, 103.53)  # torchvision's ImageNet normalization, on 0-255 pixels
IMAGENET_STD = (58.395, 57.12, 57.375)
CAFFE_MEAN = (123.68, 116.779, 103.939)  # the seed's mean subtraction


@dataclass(frozen=True)
class ModelConfig:
    """What a model needs around its network: input contract, layers that matter, labels.

    ``imagenet_head`` lists the checkpoint prefixes of the ImageNet classifier, dropped
    on import when the model gets another head (the 14-way one).
    """

    name: str
    input_size: int = 224
    channels: int = 3
    mean: tuple[float, float, float] = CAFFE_MEAN
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    feature_layer: str = "gap"
    classifier_layer: str = "fc"
    imagenet_head: tuple[str, ...] = ()
    labels: tuple[str, ...] = LABELS


Builder = Callable[..., NetSpec]
_REGISTRY: dict[str, tuple[ModelConfig, Builder]] = {}


class UnknownModelError(KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register_model(config: ModelConfig) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(num_classes, dropout, input_size) -> NetSpec`` under ``config.name``.

    Raises
    ------
    ValueError
        If the name is already registered.
    """

    def deco(builder: Builder) -> Builder:
        if config.name in _REGISTRY:
            raise ValueError(f"model {config.name!r} is already registered")
        _REGISTRY[config.name] = (config, builder)
        return builder

    return deco


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    """The frozen config of model ``name``."""
    return _lookup(name)[0]


def _lookup(name: str) -> tuple[ModelConfig, Builder]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None


def create_spec(name: str, num_classes: int = len(LABELS), dropout: float = 0.2,
                input_size: int | None = None, l2: float = 0.0) -> NetSpec:
    """Build the engine-neutral network of model ``name`` (see :mod:`cxrzoo.models.spec`).

    ``l2`` puts an L2 penalty of that strength on the classifier's weight and bias (the seed's head).
    """
    config, builder = _lookup(name)
    spec = builder(num_classes=num_classes, dropout=dropout, input_size=input_size or config.input_size)
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if l2 > 0:
        head = spec.output
        spec = replace(spec, nodes=spec.nodes[:-1] + (replace(head, attrs={**head.attrs, "l2": float(l2)}),))
    return spec


def create_model(name: str, num_classes: int = len(LABELS), pretrained: str | None = None,
                 engine: str = "bigdl", **options):
    """Build model ``name`` as an engine network, optionally with weights from a torchvision checkpoint.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    num_classes : int
        1000 keeps the ImageNet classifier (the checkpoint's, when given); any other count
        gets the seed's head (global pooling, dropout, dense) freshly initialised.
    pretrained : str, optional
        ``.pth`` or ``.safetensors`` in torchvision's layout (read without running pickle code).
    engine : str
        Training engine (``"bigdl"``); the Spark/BigDL context must exist (:func:`cxrzoo.get_spark`).
    **options
        ``dropout``, ``input_size``, ``l2`` (penalty on the classifier's weight and bias), ``seed``.

    Returns
    -------
    The engine's network: for BigDL a ``bigdl.dllib.nn.layer.Model`` (``evaluate()``, ``forward(x)`` on
    N×3×S×S float32 normalized as the config says, returning N×classes logits).
    """
    from cxrzoo.engine.base import get_engine
    from cxrzoo.models.pretrained import load_pretrained

    unknown = set(options) - {"dropout", "input_size", "seed", "l2"}
    if unknown:
        raise TypeError(f"create_model: unknown options {sorted(unknown)}; use dropout, input_size, l2, seed")
    config = get_config(name)
    spec = create_spec(name, num_classes=num_classes, dropout=options.get("dropout", 0.2),
                       input_size=options.get("input_size"), l2=options.get("l2", 0.0))
    eng = get_engine(engine)
    net = eng.build(spec, seed=options.get("seed", 0))
    if pretrained is not None:
        eng.set_weights(net, spec, load_pretrained(spec, config, pretrained))
    net.cxr_spec = spec
    return net
