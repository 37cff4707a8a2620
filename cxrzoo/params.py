"""Params shared by cxrzoo's stages, as ``pyspark.ml.param.shared`` writes them: the preprocessing mixins, and
:class:`Option` / :func:`options_mixin`, which make the training options' Params from their table
(:mod:`cxrzoo.train.options`)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pyspark.ml.param import Param, Params, TypeConverters

from cxrzoo.normalization import CAFFE_MEAN, NORMALIZATIONS
from cxrzoo.errors import InputError


def _one_of(name: str, allowed) -> callable:
    def convert(value):
        v = TypeConverters.toString(value)
        if v not in allowed:
            raise InputError(f"{name} must be one of {sorted(allowed)}, got {v!r}")
        return v
    return convert


def _positive_int(name: str):
    def convert(value):
        v = TypeConverters.toInt(value)
        if v <= 0:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
        return v
    return convert


def _non_negative_int(name: str):
    def convert(value):
        v = TypeConverters.toInt(value)
        if v < 0:
            raise InputError(f"{name} must be >= 0, got {value!r}")
        return v
    return convert


def _probability(name: str):
    def convert(value):
        v = TypeConverters.toFloat(value)
        if not 0.0 <= v <= 1.0:
            raise InputError(f"{name} must be in [0, 1], got {value!r}")
        return v
    return convert


class HasCropSize(Params):
    """Mixin for param cropSize: side of the square center/random crop fed to the network."""

    cropSize = Param(Params._dummy(), "cropSize", "side of the square crop fed to the network",
                     typeConverter=_positive_int("cropSize"))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(cropSize=224)

    def getCropSize(self) -> int:
        """Gets the value of cropSize or its default value."""
        return self.getOrDefault(self.cropSize)

    def setCropSize(self, value: int) -> "Params":
        """Sets the value of :py:attr:`cropSize`."""
        return self._set(cropSize=value)


class HasNormalization(Params):
    """Mixin for param normalization: channel normalization, 'caffe' (seed) or 'imagenet'."""

    normalization = Param(Params._dummy(), "normalization",
                          f"channel normalization: 'caffe' subtracts {CAFFE_MEAN} as the seed did; "
                          "'imagenet' uses torchvision's mean/std",
                          typeConverter=_one_of("normalization", NORMALIZATIONS))

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(normalization="caffe")

    def getNormalization(self) -> str:
        """Gets the value of normalization or its default value."""
        return self.getOrDefault(self.normalization)

    def setNormalization(self, value: str) -> "Params":
        """Sets the value of :py:attr:`normalization`."""
        return self._set(normalization=value)


@dataclass(frozen=True)
class Option:
    """One option, declared once: it becomes a Param with its getter and setter (:func:`options_mixin`), a keyword
    of the constructor of the classes that carry it, and (with a ``flag``) a command-line option.

    Attributes
    ----------
    name : str
        The Param's name (``batchSize``); the getter and setter are ``getBatchSize`` / ``setBatchSize``.
    default
        The Param's default, also the command line's (which passes only what is given).
    doc : str
        The Param's doc, also the ``--help`` text.
    convert : callable
        The Param's type converter, which also checks the value (raising :class:`~cxrzoo.errors.InputError`).
    flag : str, optional
        The command-line option (``--batch-size``); None: the Python API only.
    aliases : tuple of str
        More names of the flag (``--backbone`` for ``--model``).
    choices : tuple or callable, optional
        The values ``--help`` offers (a callable is asked when the parser is built).
    kind : type
        What the flag's text is read as first: ``str``, ``int``, ``float``, ``bool`` (a switch that sets the
        opposite of the default) or ``list`` (comma-separated).
    owner : str
        ``train``, or the engine that reads the option (its rows live in that engine's package).
    """

    name: str
    default: Any
    doc: str
    convert: Callable[[Any], Any]
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    choices: tuple | Callable[[], list] | None = None
    kind: type = str
    owner: str = "train"

    @property
    def dest(self) -> str:
        """The attribute argparse stores the flag's value under (its own default: ``--batch-size`` → batch_size)."""
        return self.flag.lstrip("-").replace("-", "_") if self.flag else self.name


def _accessor_names(name: str) -> tuple[str, str]:
    cap = name[0].upper() + name[1:]
    return f"get{cap}", f"set{cap}"


def options_mixin(class_name: str, options: Sequence[Option], doc: str) -> type[Params]:
    """A Params mixin, as ``pyspark.ml.param.shared`` writes them by hand: a Param per option, its default set in
    ``__init__``, and a getter and a setter each."""
    namespace: dict[str, Any] = {"__doc__": doc, "__module__": __name__, "_options": tuple(options)}
    for opt in options:
        namespace[opt.name] = Param(Params._dummy(), opt.name, opt.doc, typeConverter=opt.convert)
        get, set_ = _accessor_names(opt.name)

        def getter(self, _n=opt.name):
            return self.getOrDefault(self.getParam(_n))

        def setter(self, value, _n=opt.name):
            return self._set(**{_n: value})

        getter.__name__, setter.__name__ = get, set_
        getter.__doc__ = f"Gets the value of {opt.name} or its default value."
        setter.__doc__ = f"Sets the value of :py:attr:`{opt.name}`."
        namespace.setdefault(get, getter)
        namespace.setdefault(set_, setter)

    def __init__(self) -> None:
        super(cls, self).__init__()
        self._setDefault(**{o.name: o.default for o in options})

    namespace["__init__"] = __init__
    cls = type(class_name, (Params,), namespace)
    return cls


def keyword_signature(options: Sequence[Option], extra: dict[str, Any]) -> inspect.Signature:
    """The keyword-only signature of a constructor taking ``options`` and the ``extra`` keywords (name: default)."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in extra.items()]
    params += [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default) for o in options]
    return inspect.Signature(params)
