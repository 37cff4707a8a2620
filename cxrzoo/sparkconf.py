"""Spark settings as data: merging, checking a running session against them, and spark-submit flags.

Shared by :mod:`cxrzoo.session` and the engines, which say what they need without either importing
the other's libraries.
"""
from __future__ import annotations

import shlex
from typing import Any, Mapping

from cxrzoo.errors import InputError

# settings whose value is a list: a wanted value is satisfied when all its items are present
_LISTS = {"spark.driver.extraJavaOptions": " ", "spark.executor.extraJavaOptions": " ",
          "spark.driver.extraClassPath": ":", "spark.executor.extraClassPath": ":"}
# spark-submit's own flags for some settings
_FLAGS = {"spark.master": "--master", "spark.app.name": "--name", "spark.driver.memory": "--driver-memory",
          "spark.driver.extraClassPath": "--driver-class-path", "spark.jars": "--jars",
          "spark.executor.memory": "--executor-memory", "spark.executor.cores": "--executor-cores",
          "spark.executor.instances": "--num-executors"}


class SparkConfigError(InputError, RuntimeError):
    """The running SparkSession lacks settings that can only be given when it starts.

    ``missing`` maps each setting to the value to add.
    """

    def __init__(self, missing: Mapping[str, str], why: str) -> None:
        self.missing = dict(missing)
        flags = " ".join(submit_flags(self.missing))
        builder = "".join(f"\n    .config({k!r}, {v!r})" for k, v in self.missing.items())
        super().__init__(f"the running SparkSession lacks settings that {why} needs and that cannot change once "
                         f"Spark has started; start it with them. spark-submit / pyspark flags:\n  {flags}\n"
                         f"or in Python, before the session exists:\n  SparkSession.builder{builder}"
                         "\n(`cxrzoo spark-conf` prints them all)")


def _items(key: str, value: str | None) -> list[str]:
    sep = _LISTS[key]
    return [v for v in (value or "").split(sep) if v]


def merge(base: Mapping[str, str], more: Mapping[str, str]) -> dict[str, str]:
    """``base`` updated with ``more``; list-valued settings (Java options, class paths) are joined."""
    out = dict(base)
    for key, value in more.items():
        if key in _LISTS and out.get(key):
            have = _items(key, out[key])
            out[key] = _LISTS[key].join(have + [v for v in _items(key, value) if v not in have])
        else:
            out[key] = value
    return out


def satisfied(key: str, have: str | None, want: str) -> bool:
    """Whether the setting ``key`` with value ``have`` meets ``want``."""
    if key in _LISTS:
        return set(_items(key, want)) <= set(_items(key, have))
    return have == want


def missing(conf: Any, wanted: Mapping[str, str]) -> dict[str, str]:
    """Of ``wanted``, the settings that ``conf`` (a SparkConf) does not meet."""
    return {k: v for k, v in wanted.items() if not satisfied(k, conf.get(k, None), v)}


def submit_flags(conf: Mapping[str, str]) -> list[str]:
    """The settings as spark-submit flags (``--master``, ``--driver-class-path``, ``--conf k=v``, …), shell-quoted."""
    out = []
    for key, value in conf.items():
        flag = _FLAGS.get(key)
        out.append(f"{flag} {shlex.quote(value)}" if flag else f"--conf {shlex.quote(f'{key}={value}')}")
    return out
