"""Peak memory of the soak's processes, sampled from /proc while the jobs run.

- the driver JVM (its pid from the JVM itself through py4j) and the Python driver (this process): their
  ``VmHWM`` (the kernel's own peak RSS) and the largest ``VmRSS`` sampled;
- the Python workers: every process descending from the JVM (``pyspark.daemon``, the workers it forks, their
  decoder children), each one's ``VmHWM`` (the largest over the workers), and the largest sum of their
  ``VmRSS`` in one sample (shared copy-on-write pages counted in each).

A thread samples every ``interval`` seconds; :meth:`ProcSampler.checkpoint` returns the peaks since the start
(cumulative: the kernel's high-water marks never fall) and since the previous checkpoint (the window).

The JVM's RSS also grows when its garbage collector commits more heap (lazily, up to -Xmx: the collector's
choice, not a leak), so :func:`jvm_heap` reads, at each checkpoint, the heap's peak committed size (JMX) and the
heap still used after a full GC (what is retained); :func:`no_growth` excuses the JVM's RSS the growth of the
committed heap and holds the retained heap to the bar instead.
"""
from __future__ import annotations

import os
import threading
import time

METRICS = ("jvm_hwm_mb", "jvm_rss_mb", "driver_hwm_mb", "driver_rss_mb", "worker_hwm_mb", "workers_rss_sum_mb")


def jvm_pid(spark) -> int:
    """The pid of the SparkSession's driver JVM."""
    try:
        return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    except Exception:  # noqa: BLE001 - an older JVM: the gateway's process (spark-submit execs java)
        return int(spark.sparkContext._gateway.proc.pid)


def jvm_heap(spark) -> dict:
    """The driver JVM's heap: peak committed (sum of the heap pools' peaks, JMX) and used after a full GC, MB."""
    mf = spark.sparkContext._jvm.java.lang.management.ManagementFactory
    committed = sum(int(p.getPeakUsage().getCommitted()) for p in mf.getMemoryPoolMXBeans()
                    if str(p.getType().toString()) == "Heap memory")
    spark.sparkContext._jvm.java.lang.System.gc()
    used = int(mf.getMemoryMXBean().getHeapMemoryUsage().getUsed())
    return {"jvm_heap_committed_peak_mb": round(committed / 2**20, 1), "jvm_heap_after_gc_mb": round(used / 2**20, 1)}


def _status(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in kB, or None if it is gone (or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            vals = {}
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    vals[line[:5]] = int(line.split()[1])
        return vals["VmRSS"], vals["VmHWM"]
    except (OSError, KeyError, ValueError):
        return None


def parents() -> dict[int, int]:
    """``{pid: ppid}`` of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    out[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def descendants(root: int, ppids: dict[int, int]) -> set[int]:
    """The processes below ``root``."""
    kids: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


class ProcSampler:
    """Samples the JVM, this process and the JVM's descendants; ``with ProcSampler(pid):`` runs the thread."""

    def __init__(self, jvm: int, interval: float = 0.2) -> None:
        self.jvm, self.interval = jvm, interval
        self.cum = dict.fromkeys(METRICS, 0.0)
        self.win = dict.fromkeys(METRICS, 0.0)
        self.workers_seen: set[int] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def __enter__(self) -> "ProcSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        got: dict[str, float] = {}
        for key, pid in (("jvm", self.jvm), ("driver", os.getpid())):
            st = _status(pid)
            if st:
                got[f"{key}_rss_mb"], got[f"{key}_hwm_mb"] = st[0] / 1024, st[1] / 1024
        rss_sum, hwm = 0, 0
        kids = descendants(self.jvm, parents())
        for pid in kids:
            st = _status(pid)
            if st:
                rss_sum += st[0]
                hwm = max(hwm, st[1])
        got["workers_rss_sum_mb"], got["worker_hwm_mb"] = rss_sum / 1024, hwm / 1024
        with self._lock:
            self.workers_seen |= kids
            self.samples += 1
            for k, v in got.items():
                self.cum[k] = max(self.cum[k], v)
                self.win[k] = max(self.win[k], v)

    def checkpoint(self) -> dict:
        """Peaks since the start and since the last checkpoint (MB), after a fresh sample."""
        time.sleep(self.interval)
        self.sample()
        with self._lock:
            out = {"cumulative": {k: round(v, 1) for k, v in self.cum.items()},
                   "window": {k: round(v, 1) for k, v in self.win.items()},
                   "worker_processes_seen": len(self.workers_seen), "samples": self.samples}
            self.win = dict.fromkeys(METRICS, 0.0)
        return out


def no_growth(early: dict, late: dict, factor: float, slack_mb: float) -> tuple[bool, dict]:
    """Each cumulative peak at the end ≤ ``factor`` × the one at the checkpoint + ``slack_mb`` (the JVM's RSS:
    + the growth of its committed heap), and the same for the JVM's heap retained after a full GC.

    ``early`` and ``late``: :meth:`ProcSampler.checkpoint` results with :func:`jvm_heap`'s under ``"heap"``.
    """
    out, ok = {}, True
    grown = max(0.0, late["heap"]["jvm_heap_committed_peak_mb"] - early["heap"]["jvm_heap_committed_peak_mb"])
    pairs = [(k, early["cumulative"][k], late["cumulative"][k]) for k in METRICS]
    pairs.append(("jvm_heap_after_gc_mb", early["heap"]["jvm_heap_after_gc_mb"], late["heap"]["jvm_heap_after_gc_mb"]))
    for k, a, b in pairs:
        bar = factor * a + slack_mb + (grown if k.startswith(("jvm_hwm", "jvm_rss")) else 0.0)
        out[k] = {"checkpoint": a, "end": b, "bar": round(bar, 1), "ok": b <= bar}
        ok &= b <= bar
    out["jvm_heap_committed_peak_mb"] = {"checkpoint": early["heap"]["jvm_heap_committed_peak_mb"],
                                         "end": late["heap"]["jvm_heap_committed_peak_mb"], "bar": None, "ok": True}
    return ok, out
