"""The sources ingest reads: a registry, as models and engines have.

Each source (NIH, CheXpert, MIMIC-CXR, a plain folder of images) registers itself with
:func:`register_source` from the module that reads it; :data:`SOURCE_MODULES` names those modules so that
listing the sources (the CLI's ``--source`` choices) imports nothing heavy. A new source is one
:class:`Source` and its reader; :func:`cxrzoo.ingest.job.ingest` and the command line need no change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable

from cxrzoo.errors import InputError

# name -> (the module whose import registers it, its files in a line of --help); read without importing the readers
SOURCE_MODULES = {
    "nih": ("cxrzoo.ingest.reader", "labels Data_Entry_2017*.csv[.gz], split train_val_list.txt / test_list.txt"),
    "chexpert": ("cxrzoo.ingest.sources", "labels train.csv or valid.csv"),
    "mimic": ("cxrzoo.ingest.sources", "labels mimic-cxr-2.0.0-chexpert.csv[.gz], metadata (required), split, "
              "split name"),
    "folder": ("cxrzoo.ingest.reader", "no labels: every image under --images, to score later"),
}
OPTIONS = ("labels", "split", "metadata", "split_name", "policy", "unmentioned")  # what a source may take
DEFAULTS = {"policy": "ones", "unmentioned": "zeros"}  # given unless the caller says otherwise
_MIMIC_ONLY = "metadata and split_name are MIMIC-CXR's (source 'mimic')"
# what every labelled source but MIMIC-CXR says of its two options
MIMIC_ONLY = {"metadata": _MIMIC_ONLY, "split_name": _MIMIC_ONLY}


@dataclass(frozen=True)
class Source:
    """A layout of images and label files that ingest reads.

    Attributes
    ----------
    name : str
        What ``--source`` / ``ingest(source=...)`` calls it (a key of :data:`SOURCE_MODULES`).
    read : callable
        ``read(spark, images, size=, voi=, **options) -> (DataFrame, IngestReport)``, given only the options in
        ``takes``.
    takes, requires : tuple of str
        The :data:`OPTIONS` it reads, and those it cannot do without.
    refusals : dict
        An option it does not take -> why (the message for a user who gives it anyway).
    recorded : tuple of str
        Options written into the ingest report beside ``source``, ``size`` and ``voi``.
    """

    name: str
    read: Callable[..., Any]
    takes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    refusals: dict[str, str] = field(default_factory=dict)
    recorded: tuple[str, ...] = ()

    def options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The options of ``given`` (``None`` = not given) this source reads, checked.

        Raises
        ------
        InputError
            Naming an option the source does not take, or one it requires and was not given.
        """
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise InputError(f"unknown ingest options {unknown}; a source may take {list(OPTIONS)}")
        for name in OPTIONS:
            value = given.get(name)
            if value is not None and value != DEFAULTS.get(name) and name not in self.takes:
                raise InputError(self.refusals.get(name) or f"{name} is not an option of source {self.name!r}; "
                                 f"it takes {list(self.takes) or 'no options'}")
        missing = [n for n in self.requires if given.get(n) is None]
        if missing:
            flags = ", ".join("--" + m.replace("_", "-") for m in missing)
            raise InputError(f"source {self.name!r} needs {', '.join(missing)} ({flags})")
        return {n: given[n] if given.get(n) is not None else DEFAULTS.get(n) for n in self.takes}


_SOURCES: dict[str, Source] = {}


def register_source(source: Source) -> Source:
    """Add ``source`` to the registry (each reading module calls this for its own)."""
    if source.name not in SOURCE_MODULES:
        raise InputError(f"source {source.name!r}: add it to SOURCE_MODULES in {__name__}")
    _SOURCES[source.name] = source
    return source


def source_names() -> list[str]:
    """Every registered source's name (without importing the readers)."""
    return sorted(SOURCE_MODULES)


def source_help() -> str:
    """One line per source for ``--help``."""
    return "; ".join(f"{n}: {SOURCE_MODULES[n][1]}" for n in source_names())


def get_source(name: str) -> Source:
    """The source called ``name``.

    Raises
    ------
    InputError
        For a name no source has, listing those there are.
    """
    if name not in SOURCE_MODULES:
        raise InputError(f"unknown source {name!r}; the sources are {', '.join(source_names())}")
    if name not in _SOURCES:
        import_module(SOURCE_MODULES[name][0])
    return _SOURCES[name]
