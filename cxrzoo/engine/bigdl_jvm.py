"""Spark and Java plumbing for the BigDL trainer, over py4j: cached RDDs, block placement, Scala collections.

BigDL keeps per-partition optimizer state in executor memory and mutates it in place, so where a
cached block lives decides whether an update is kept.  :func:`cache_at` puts objects on chosen
executors; :func:`block_executors` tells where a cached RDD's partitions are.
"""
from __future__ import annotations

from typing import Any


def persistent_ids(sc) -> set[int]:
    """Ids of the RDDs the JVM has persisted."""
    return {int(k) for k in sc._jsc.getPersistentRDDs().keys()}


def unpersist(sc, ids: set[int]) -> None:
    """Unpersist the RDDs with these ids (those still persisted), without blocking."""
    jmap = sc._jsc.getPersistentRDDs()
    for rid in ids:
        if rid in jmap:
            jmap[rid].unpersist(False)


def option_value(opt) -> Any:
    """The value of a Scala ``Option`` (None when empty)."""
    return opt.get() if opt.isDefined() else None


def scala_values(scala_map) -> list:
    """The values of a Scala ``Map``."""
    it = scala_map.values().iterator()
    out = []
    while it.hasNext():
        out.append(it.next())
    return out


def step_counts(parts) -> list:
    """The step counter (``evalCounter``) of every optim method in a list of per-partition
    ``Map[name, OptimMethod]`` (None where a method has not stepped)."""
    return [option_value(o.state().get("evalCounter")) for m in parts for o in scala_values(m)]


def executor_ids(sc) -> set[str]:
    """Ids of the live executors (empty in local mode, where the driver computes)."""
    ids = sc._jsc.sc().getExecutorIds().mkString(",")  # a Scala Seq
    return set(ids.split(",")) - {""}


def node_number(sc) -> int:
    """BigDL's node count: the training partitions of a DistriOptimizer (1 in local mode)."""
    engine = getattr(sc._jvm.com.intel.analytics.bigdl.dllib.utils, "Engine$")  # private[bigdl]: no static forwarder
    return int(getattr(engine, "MODULE$").nodeNumber())


def block_managers(sc) -> int:
    """Block managers known to the driver: the executors plus the driver's own."""
    return int(sc._jsc.sc().getExecutorMemoryStatus().size())


def block_executors(sc, jrdd) -> list[str | None]:
    """For each partition of the cached JVM RDD ``jrdd``, the executor holding its block.

    Given as Spark's task-location string ``executor_<host>_<id>``; None where the partition
    is not cached.
    """
    jvm = sc._jvm
    master = sc._jsc.sc().env().blockManager().master()
    out: list[str | None] = []
    for i in range(len(jrdd.partitions())):
        found = master.getLocations(jvm.org.apache.spark.storage.RDDBlockId(jrdd.id(), i))
        if found.isEmpty():
            out.append(None)
        else:
            b = found.apply(0)
            out.append(f"executor_{b.host()}_{b.executorId()}")
    return out


def _scala_seq(sc, items: list) -> Any:
    lst = sc._jvm.java.util.ArrayList()
    for it in items:
        lst.add(it)
    return sc._jvm.scala.collection.JavaConverters.asScalaBufferConverter(lst).asScala().toSeq()


def cache_at(sc, objects: list, where: list[str | None]) -> Any:
    """A JVM RDD with one object per partition, cached (one deserialized copy) on the executor ``where[i]``.

    The RDD is local-checkpointed, so tasks that read it carry no copy of the objects, and a
    task that mutates its partition's object mutates the cached one as long as it runs on that
    executor (Spark schedules it there: the cached block is its preferred location).
    """
    jvm = sc._jvm
    pairs = [jvm.scala.Tuple2(obj, _scala_seq(sc, [loc] if loc else [])) for obj, loc in zip(objects, where)]
    rdd = sc._jsc.sc().makeRDD(_scala_seq(sc, pairs), jvm.scala.reflect.ClassTag.AnyRef())
    rdd.persist(jvm.org.apache.spark.storage.StorageLevel.MEMORY_ONLY())
    rdd.localCheckpoint()
    rdd.count()
    return rdd
