"""Kill ``cxrzoo score`` at a random point of its write, then rerun it.

The command runs in a session of its own (``start_new_session``); once the write's hidden sibling
(``.<out>.tmp-<id>``, :mod:`cxrzoo.atomic`) appears, the soak waits a random fraction of the expected
scoring time and SIGKILLs the process group.  ``pyspark.daemon`` puts itself in a process group of its own, so
whatever of the session outlives the kill (daemon, workers, decoder children) is waited for and, after
``grace`` seconds, reported and killed by pid.  Then the same command runs to completion.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

log = logging.getLogger("bench.soak")


def _session_members(sid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def siblings(out: Path) -> list[str]:
    """The hidden siblings an atomic write of ``out`` leaves (temporary and old versions)."""
    if not out.parent.is_dir():
        return []
    return sorted(c for c in os.listdir(out.parent)
                  if c.startswith(f".{out.name}.tmp-") or c.startswith(f".{out.name}.old-")
                  or c.startswith(f"{out.name}._tmp-"))


def _wait_writing(p: subprocess.Popen, out: Path, timeout: float, before: set[str]) -> float | None:
    """When a new temporary sibling of ``out`` appears (``before``: those a killed run left), or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if any(".tmp-" in s for s in set(siblings(out)) - before):
            return time.monotonic()
        if p.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def kill_once(cmd: list[str], out: Path, delay: float, log_path: Path, grace: float = 15.0) -> dict:
    """Run ``cmd``, SIGKILL its process group ``delay`` s after the write starts; what happened."""
    before = set(siblings(out))
    with open(log_path, "ab") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    t0 = time.monotonic()
    started = _wait_writing(p, out, 600, before)
    rec = {"delay_s": round(delay, 2), "killed": False, "rc": None}
    if started is None:
        rec["rc"] = p.wait()
        rec["note"] = "the command ended before its write started"
        return rec
    rec["write_started_after_s"] = round(started - t0, 2)
    while time.monotonic() - started < delay and p.poll() is None:
        time.sleep(0.01)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        rec["killed"] = True
        rec["killed_after_write_start_s"] = round(time.monotonic() - started, 2)
    rec["rc"] = p.wait()
    rec["siblings_after_kill"] = siblings(out)
    t1 = time.monotonic()
    left = _session_members(p.pid)
    rec["session_processes_after_kill"] = len(left)
    while left and time.monotonic() - t1 < grace:
        time.sleep(0.2)
        left = _session_members(p.pid)
    rec["survivors_after_grace"] = len(left)
    for pid in left:  # our own descendants, by pid
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return rec


def kill_and_rerun(cmd: list[str], out: Path, expected_s: float, rng, log_path: Path, attempts: int = 4) -> dict:
    """One round: kill a run at a random point of its write (retrying with shorter delays if it finished first),
    then rerun to completion.  ``expected_s``: how long the write is expected to take.  Returns the record of the
    kill and of the rerun (``rerun_write_s``: how long the rerun's write took, the next round's expectation)."""
    delay = float(rng.uniform(0.05, 1.0)) * expected_s
    tries = []
    for _ in range(attempts):
        rec = kill_once(cmd, out, delay, log_path)
        tries.append(rec)
        if rec["killed"]:
            break
        delay /= 3
    log.info("kill: %s", "; ".join(f"{'killed' if r['killed'] else 'missed'} {r.get('killed_after_write_start_s', '-')}"
                                   f" s after the write started (drawn {r['delay_s']} s), siblings "
                                   f"{r.get('siblings_after_kill')}, survivors {r.get('survivors_after_grace')}"
                                   for r in tries))
    t0, before = time.monotonic(), set(siblings(out))
    with open(log_path, "ab") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    started = _wait_writing(p, out, 600, before)
    rc = p.wait()
    write_s = time.monotonic() - started if started is not None else None
    return {"tries": tries, "killed": tries[-1]["killed"], "rerun_rc": rc, "rerun_s": round(time.monotonic() - t0, 1),
            "rerun_write_s": round(write_s, 1) if write_s is not None else None, "siblings_after_rerun": siblings(out)}
