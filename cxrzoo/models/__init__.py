"""The model zoo: an engine-neutral network spec per registered name."""
from cxrzoo.models import zoo as _zoo  # noqa: F401  (registers the built-in models)
from cxrzoo.models.pretrained import CheckpointMismatchError, load_pretrained
from cxrzoo.models.registry import (ModelConfig, UnknownModelError, create_spec, get_config,
                                    list_models, register_model)
from cxrzoo.models.spec import NetSpec, Node, SpecBuilder

__all__ = ["CheckpointMismatchError", "ModelConfig", "NetSpec", "Node", "SpecBuilder", "UnknownModelError",
           "create_spec", "get_config", "list_models", "load_pretrained", "register_model"]
