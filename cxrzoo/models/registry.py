"""The model registry: builders register by name; each config is read from the model's card, and frozen."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from cxrzoo.labels import LABELS
from cxrzoo.models.spec import NetSpec


from cxrzoo.models.cards import read_card
from cxrzoo.normalization import CAFFE_MEAN, NORMALIZATIONS, UNIT_STD
from cxrzoo.errors import InputError


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
    std: tuple[float, float, float] = UNIT_STD
    feature_layer: str = "gap"
    classifier_layer: str = "fc"
    imagenet_head: tuple[str, ...] = ()
    labels: tuple[str, ...] = LABELS
    card: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> "ModelConfig":
        """The config a model card (``models/<name>.toml``) describes."""
        inp, layers = card["input"], card["layers"]
        mean, std = NORMALIZATIONS[inp["normalization"]]
        return cls(name=card["model"]["name"], input_size=int(inp["size"]), channels=int(inp["channels"]),
                   mean=mean, std=std, feature_layer=layers["feature"], classifier_layer=layers["classifier"],
                   imagenet_head=tuple(layers["imagenet_head"]), card=card)


Builder = Callable[..., NetSpec]
_REGISTRY: dict[str, tuple[ModelConfig, Builder]] = {}


class UnknownModelError(InputError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register_model(name_or_config: str | ModelConfig) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(num_classes, dropout, input_size) -> NetSpec`` under a name.

    Given a name, the config is read from the model's card (``models/<name>.toml``); a
    :class:`ModelConfig` registers a model without a card (e.g. a user's own, in a session).

    Raises
    ------
    ValueError
        If the name is already registered.
    """
    config = ModelConfig.from_card(read_card(name_or_config)) if isinstance(name_or_config, str) else name_or_config

    def deco(builder: Builder) -> Builder:
        if config.name in _REGISTRY:
            raise InputError(f"model {config.name!r} is already registered")
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
        raise InputError(f"l2 must be >= 0, got {l2}")
    if l2 > 0:
        head = spec.output
        spec = replace(spec, nodes=spec.nodes[:-1] + (replace(head, attrs={**head.attrs, "l2": float(l2)}),))
    return spec
