"""DDP launch cost: Spark's TorchDistributor against cxrzoo's own barrier-task launcher, same work.

Both start 2 gloo processes on Spark ``local[2]`` barrier tasks, form a process group, all-reduce one
tensor and return.  TorchDistributor (``num_processes=2, local_mode=False``) runs ``torchrun`` in each
barrier task, which starts a fresh Python that imports torch; cxrzoo's launcher
(:mod:`cxrzoo.engine.torch_worker`'s rendezvous) runs in the task's own, reused Python worker.  The
torch engine launches once per epoch, so this is a per-epoch cost.  Wall clock around each launch,
one warm-up launch each, alternating rounds, medians.

    .venv/bin/python benchmarks/bench_launch.py [--repeats 5] [--json]
"""
from __future__ import annotations

import json
import logging
import time

import numpy as np

from _common import bench_args, cpu_name, emit

log = logging.getLogger("bench_launch")


def _allreduce() -> float:
    import torch
    import torch.distributed as dist

    t = torch.ones(1)
    dist.all_reduce(t)
    return float(t)


def distributor_fn() -> float:
    """What TorchDistributor runs in each torchrun process (env:// rendezvous set up by torchrun)."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        return _allreduce()
    finally:
        dist.destroy_process_group()


def own_launch(sc) -> float:
    """A barrier stage whose tasks meet through allGather and init gloo in the worker process itself."""
    def task(_):
        import json as js
        from datetime import timedelta

        import torch.distributed as dist
        from pyspark import BarrierTaskContext

        from cxrzoo.engine.torch_worker import _free_port

        ctx = BarrierTaskContext.get()
        rank, world = ctx.partitionId(), len(ctx.getTaskInfos())
        host = ctx.getTaskInfos()[0].address.rsplit(":", 1)[0]
        ports = [js.loads(m)["port"] for m in ctx.allGather(js.dumps({"port": _free_port() if rank == 0 else 0}))]
        dist.init_process_group("gloo", init_method=f"tcp://{host}:{ports[0]}", rank=rank, world_size=world,
                                timeout=timedelta(minutes=5))
        try:
            yield _allreduce()
        finally:
            dist.destroy_process_group()

    return sc.parallelize(range(2), 2).barrier().mapPartitions(task).collect()[0]


def main() -> None:
    """Alternate the launchers; print the table, then one JSON line."""
    args = bench_args(__doc__, 5)
    from pyspark.ml.torch.distributor import TorchDistributor

    from cxrzoo.session import get_spark

    spark = get_spark(master="local[2]", driver_memory="2g")
    logging.getLogger("TorchDistributor").setLevel(logging.WARNING)
    dist = TorchDistributor(num_processes=2, local_mode=False, use_gpu=False)
    contenders = {"torch_distributor": lambda: dist.run(distributor_fn),
                  "cxrzoo_barrier": lambda: own_launch(spark.sparkContext)}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()  # warm-up (Python workers, imports)
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    log.info("DDP launch (2 gloo processes, local[2]; %s): median of %d", cpu_name(), args.repeats)
    for k, v in med.items():
        log.info("  %-18s %7.2f s", k, v)
    emit(json.dumps({"benchmark": "launch", "cpu": cpu_name(), "seconds": {k: round(v, 3) for k, v in med.items()},  # noqa: T201
                      "rounds": {k: [round(x, 3) for x in v] for k, v in times.items()},
                      "distributor_vs_own": round(med["torch_distributor"] / med["cxrzoo_barrier"], 2)}))


if __name__ == "__main__":
    main()
