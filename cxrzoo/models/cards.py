"""Model cards: ``models/<name>.toml`` holds each registry entry's facts, read here, written for trained models.

A card gives the architecture, the input contract (size, channels, the name of the normalization in
:mod:`cxrzoo.normalization`), the feature and classifier layers, the torchvision-layout checkpoint the
network maps from (file, sha256, license, where to get it), parameter counts and published accuracy.
The registry builds each :class:`~cxrzoo.models.registry.ModelConfig` from its card, so every fact lives
in one place.  Trained model directories and exported IRs carry a ``card.toml`` of the same schema.

The cards live in the source tree's top-level ``models/``; an installed wheel carries them as
``cxrzoo/cards/`` (installed there by CMakeLists.txt).
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from cxrzoo.errors import InputError

CARD_FILE = "card.toml"  # the card inside a trained model directory or an exported IR


class CardError(InputError):
    """A card is missing or malformed: a registry card, or the card of a model directory or an exported IR
    (:class:`~cxrzoo.models.modeldir.ModelDirError` and :class:`~cxrzoo.models.irdir.NotAnIRDirError` say which
    of those two layouts; catching ``CardError`` catches every bad card)."""


def read_json_card(path: Path, fix: str, error: type[CardError] = CardError) -> dict[str, Any]:
    """The JSON object in the card at ``path``: the one reader of saved cards, the model directory's
    (:mod:`cxrzoo.models.modeldir`) and the exported IR's (:mod:`cxrzoo.models.irdir`); check what it holds
    with :func:`check_card`.

    Raises
    ------
    CardError
        Of type ``error``, naming the file, what is wrong with it (binary content, invalid JSON, not an object)
        and ``fix``.
    """
    try:
        info = json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{path} is not a JSON text file (binary content at byte {e.start}): {fix}") from None
    except json.JSONDecodeError as e:
        raise error(f"{path} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): {fix}") from None
    if not isinstance(info, dict):
        raise error(f"{path} holds a JSON {type(info).__name__}, not the card's object: {fix}")
    return info


def check_card(info: dict[str, Any], path: Path, error: type[CardError], format: str, required: tuple[str, ...],
               fix: str) -> dict[str, Any]:
    """``info`` (read from ``path``) if it is of ``format`` and has the ``required`` keys, else ``error`` naming
    the format or the keys and ``fix``."""
    if info.get("format") != format:
        raise error(f"{Path(path).parent} was written by another version of cxrzoo (format "
                    f"{info.get('format') or 'none'}; this version reads {format}); {fix}")
    missing = [k for k in required if k not in info]
    if missing:
        raise error(f"{path} lacks {', '.join(missing)}: written by another version of cxrzoo or edited; {fix}")
    return info


def cards_dir() -> Path:
    """The directory of the registry's cards."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "models", here.parents[1] / "cards"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise CardError(f"no model cards found (looked in {here.parents[2] / 'models'} and {here.parents[1] / 'cards'})")


def read_card(name: str) -> dict[str, Any]:
    """The card of registry entry ``name``, checked for the fields the registry needs."""
    path = cards_dir() / f"{name}.toml"
    if not path.is_file():
        raise CardError(f"model {name!r} has no card {path}")
    with open(path, "rb") as f:
        card = tomllib.load(f)
    for table, keys in (("model", ("name", "architecture")), ("input", ("size", "channels", "normalization")),
                        ("layers", ("feature", "classifier", "imagenet_head")), ("params", ("chestxray14",))):
        for key in keys:
            if key not in card.get(table, {}):
                raise CardError(f"{path}: [{table}] has no {key!r}")
    if card["model"]["name"] != name:
        raise CardError(f"{path} is the card of {card['model']['name']!r}, not {name!r}")
    return card


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to a card")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dump_toml(card: dict[str, dict[str, Any]]) -> str:
    """A card (tables of values) as TOML text; None values are left out."""
    out = []
    for table, values in card.items():
        out.append(f"[{table}]")
        out += [f"{_key(k)} = {_value(v)}" for k, v in values.items() if v is not None]
        out.append("")
    return "\n".join(out)


def trained_card(name: str, input_size: int, normalization: str, image_size: int, params: int,
                 engine: str | None = None, pretrained: str = "", metrics: dict | None = None,
                 precision: str | None = None) -> dict[str, dict[str, Any]]:
    """The card of a trained (or exported) model: the registry card's schema, filled with this model's facts."""
    base = read_card(name)
    checkpoint = dict(base.get("checkpoint", {}), used=Path(pretrained).name) if pretrained else None
    metrics = metrics or {}
    test = metrics.get("test") or metrics.get("validation") or {}
    return {
        "model": {"name": name, "architecture": base["model"]["architecture"],
                  "description": f"{base['model']['architecture']} trained by cxrzoo on 14 thoracic findings",
                  "engine": engine, "precision": precision},
        "input": {"size": input_size, "channels": base["input"]["channels"], "normalization": normalization,
                  "image_size": image_size},
        "layers": dict(base["layers"]),
        **({"checkpoint": checkpoint} if checkpoint else {}),
        "params": {"chestxray14": params},
        "accuracy": {"split": "test" if metrics.get("test") else "validation", "mean_auroc": test.get("mean_auc"),
                     "auroc": test.get("auc") or None, "images": test.get("n")},
    }
