"""One epoch of DDP training inside a Spark barrier task (the code that runs in the Python workers).

Every task of the barrier stage holds one partition of the epoch's rows.  It spills the partition's
Arrow batches to a local IPC file (memory-mapped back: memory stays bounded), meets the other tasks
through ``BarrierTaskContext.allGather`` (rank 0's host and a free port, and every rank's row count),
joins a gloo process group, loads the weights and optimizer state the driver broadcast, and trains
``steps`` iterations of its share of each global batch under ``DistributedDataParallel``.  Rows are
visited in a permutation drawn from (seed, epoch, rank); a rank with fewer rows than the largest
cycles through its rows again, so that every rank takes the same number of steps and every row is
seen at least once.  Rank 0 sends the new state back, in chunks; every rank sends its losses.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa

from cxrzoo.engine.base import Decoder
from cxrzoo.models.spec import NetSpec
from cxrzoo.errors import InputError, JobFailedError

# tensors over read-only Arrow memory are only read
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
CHUNK = 64 << 20  # bytes of state per result row
RESULT_SCHEMA = "rank int, part int, payload binary"


@dataclass(frozen=True)
class EpochJob:
    """Everything a barrier task needs besides its rows and the broadcast state."""

    spec: NetSpec
    decode: Decoder
    epoch: int
    seed: int
    batch_size: int  # global
    optimizer: str
    learning_rate: float
    momentum: float
    nesterov: bool
    class_weights: tuple | None
    precision: str  # fp32 | bf16
    channels_last: bool
    threads: int
    frozen: tuple[str, ...] = ()
    compile: bool = False
    extra: dict = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _spill(batches: Iterator[pa.RecordBatch], where: str) -> pa.Table:
    path = os.path.join(where, "rows.arrow")
    writer = None
    for b in batches:
        if writer is None:
            writer = pa.ipc.new_file(path, b.schema)
        writer.write_batch(b)
    if writer is None:
        return pa.table({})
    writer.close()
    return pa.ipc.open_file(pa.memory_map(path)).read_all()


def make_optimizer(torch: Any, net: Any, job: EpochJob) -> Any:
    """Adam or SGD over the trainable parameters; the spec's L2 as weight decay on its layers."""
    l2 = {id(p): f for ps, f in net.l2_parameters() for p in ps}
    groups: dict[float, list] = {}
    for _, p in net.named_parameters():
        if p.requires_grad:
            groups.setdefault(l2.get(id(p), 0.0), []).append(p)
    params = [{"params": ps, "weight_decay": wd} for wd, ps in sorted(groups.items())]
    if job.optimizer == "adam":
        return torch.optim.Adam(params, lr=job.learning_rate)
    return torch.optim.SGD(params, lr=job.learning_rate, momentum=job.momentum, nesterov=job.nesterov,
                           dampening=0.0)


def loss_fn(torch: Any, class_weights: tuple | None) -> Callable:
    """BCE on logits, averaged over classes and rows; per class (w+, w−) weighting when given.

    NaN targets (labels unknown for that image, :mod:`cxrzoo.targets`) are left out: the loss is then the
    mean over the known entries.  A batch without NaN takes the plain path, bit for bit as before masks.
    """
    import torch.nn.functional as F

    w_pos, w_neg = ((torch.tensor(np.asarray(w, np.float32)) for w in class_weights) if class_weights is not None
                    else (None, None))

    def weight(y):
        return None if w_pos is None else y * w_pos + (1 - y) * w_neg

    def loss(z, y):
        unknown = torch.isnan(y)
        if not bool(unknown.any()):
            return F.binary_cross_entropy_with_logits(z, y, weight=weight(y))
        known = (~unknown).float()  # float32: a bf16 sum would round past 256 entries
        y0 = torch.where(unknown, torch.zeros_like(y), y)
        w = known if w_pos is None else known * weight(y0)
        total = F.binary_cross_entropy_with_logits(z, y0, weight=w, reduction="sum")
        return total / known.sum().clamp(min=1.0)
    return loss


def run_task(batches: Iterator[pa.RecordBatch], job: EpochJob, state: bytes) -> Iterator[pa.RecordBatch]:
    """The barrier task: train one epoch on this partition's rows with the other tasks; yield results."""
    import torch
    import torch.distributed as dist
    from pyspark import BarrierTaskContext

    from cxrzoo.engine import torch_net as tn
    from cxrzoo.engine.torch_state import load_into, pack_state

    ctx = BarrierTaskContext.get()
    rank, world = ctx.partitionId(), len(ctx.getTaskInfos())
    tmp = tempfile.mkdtemp(prefix="cxrzoo-ddp-", dir=(os.environ.get("SPARK_LOCAL_DIRS") or "").split(",")[0] or None)
    try:
        rows = _spill(batches, tmp)
        host = ctx.getTaskInfos()[0].address.rsplit(":", 1)[0]
        mine = json.dumps({"rows": rows.num_rows, "port": _free_port() if rank == 0 else 0})
        everyone = [json.loads(m) for m in ctx.allGather(mine)]
        counts = [e["rows"] for e in everyone]
        if job.batch_size % world:
            raise InputError(f"batch size {job.batch_size} does not split over {world} DDP workers")
        local_batch = job.batch_size // world
        steps = math.ceil(max(counts) / local_batch) if max(counts) else 0
        if min(counts) == 0 and steps:
            raise JobFailedError(f"barrier task {rank}: some partitions are empty ({counts} rows); the trainer must "
                               "spread the rows over every task")
        torch.set_num_threads(max(1, job.threads))
        # dropout's masks: from (seed, epoch, rank), not from the reused worker's history (a retry redraws them)
        torch.manual_seed(int(np.random.SeedSequence([job.seed, job.epoch, rank]).generate_state(1)[0]))
        if world > 1:
            dist.init_process_group("gloo", init_method=f"tcp://{host}:{everyone[0]['port']}", rank=rank,
                                    world_size=world, timeout=timedelta(minutes=30))
        try:
            yield from _train(torch, dist, tn, load_into, pack_state, rows, job, state, rank, world, steps,
                              local_batch)
        finally:
            if world > 1:
                dist.destroy_process_group()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _train(torch, dist, tn, load_into, pack_state, rows: pa.Table, job: EpochJob, state: bytes, rank: int,
           world: int, steps: int, local_batch: int) -> Iterator[pa.RecordBatch]:
    net = tn.SpecNet(job.spec)
    frozen = set(job.frozen)
    for name in frozen:
        for p in net.layer(name).parameters():
            p.requires_grad_(False)
    optim = make_optimizer(torch, net, job)
    load_into(torch, net, optim, state)
    for g in optim.param_groups:
        g["lr"] = job.learning_rate
    if job.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    for name in frozen:  # a frozen batch norm keeps its statistics too (the usual fine-tuning convention)
        m = net.layer(name)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net)  # buffers (BN statistics) follow rank 0
    step_fn = model
    if job.compile:
        step_fn = torch.compile(model)
    criterion = loss_fn(torch, job.class_weights)
    rng = np.random.default_rng([job.seed, job.epoch, rank])
    order = rng.permutation(rows.num_rows) if rows.num_rows else np.zeros(0, np.int64)
    need = steps * local_batch
    if len(order) and need > len(order):
        order = np.concatenate([order] * math.ceil(need / len(order)))[:need]
    losses, times = [], []
    bf16 = job.precision == "bf16"
    for s in range(steps):
        t0 = time.perf_counter()
        idx = order[s * local_batch:(s + 1) * local_batch]
        x, y = job.decode(rows.take(pa.array(idx)).combine_chunks().to_batches()[0])
        xt = torch.from_numpy(np.ascontiguousarray(x))
        if job.channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        yt = torch.from_numpy(np.array(y, np.float32))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = step_fn(xt)
        loss = criterion(z.float(), yt)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - t0)
    stats = json.dumps({"rank": rank, "losses": losses, "times": times, "rows": rows.num_rows}).encode()
    yield _result(rank, -1, stats)
    if rank == 0:  # one record batch per chunk: no Arrow array nears its 2 GiB limit
        blob = pack_state(torch, net, optim, {"epoch": job.epoch})
        for i, start in enumerate(range(0, max(1, len(blob)), CHUNK)):
            yield _result(0, i, blob[start:start + CHUNK])


def _result(rank: int, part: int, payload: bytes) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"rank": [rank], "part": [part], "payload": [payload]},
                                      schema=pa.schema([("rank", pa.int32()), ("part", pa.int32()),
                                                        ("payload", pa.binary())]))
