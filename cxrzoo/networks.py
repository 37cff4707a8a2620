"""``create_model``: a registry network built by a training engine (the package's face, above models and engine)."""
from __future__ import annotations

from cxrzoo.labels import LABELS
from cxrzoo.models import create_spec, get_config, load_pretrained


def create_model(name: str, num_classes: int = len(LABELS), pretrained: str | None = None,
                 engine: str = "auto", **options):
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
        Training engine: ``"torch"``, ``"bigdl"`` or ``"auto"`` (BigDL where it is installed, else torch); a
        SparkSession is attached to or started (:func:`cxrzoo.get_spark`).
    **options
        ``dropout``, ``input_size``, ``l2`` (penalty on the classifier's weight and bias), ``seed``, and the
        engine's own options (BigDL: ``engine_type``).

    Returns
    -------
    The engine's network, taking N×3×S×S float32 normalized as the config says and returning N×classes
    logits: for torch a ``torch.nn.Module`` whose ``state_dict()`` has torchvision's names; for BigDL a
    ``bigdl.dllib.nn.layer.Model`` (``evaluate()``, ``forward(x)``).
    """
    from cxrzoo.engine.base import engine_class, get_engine, resolve_engine

    engine = resolve_engine(engine)
    own = set(engine_class(engine).option_names())
    unknown = set(options) - {"dropout", "input_size", "seed", "l2"} - own
    if unknown:
        raise TypeError(f"create_model: unknown options {sorted(unknown)}; use dropout, input_size, l2, seed"
                        + (f" or the engine's {sorted(own)}" if own else ""))
    config = get_config(name)
    spec = create_spec(name, num_classes=num_classes, dropout=options.get("dropout", 0.2),
                       input_size=options.get("input_size"), l2=options.get("l2", 0.0))
    from cxrzoo.session import get_spark

    engine_options = {k: v for k, v in options.items() if k in own}
    get_spark(engine=engine, **engine_options)  # the running session, checked for the engine, or a new one
    eng = get_engine(engine, **engine_options)
    net = eng.build(spec, seed=options.get("seed", 0))
    if pretrained is not None:
        eng.set_weights(net, spec, load_pretrained(spec, config, pretrained))
    net.cxr_spec = spec
    return net
