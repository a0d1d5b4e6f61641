"""Process memory from psutil (RSS, optionally USS) and the interpreter's allocated block count."""

from __future__ import annotations

import os
import sys
import time

import psutil

from leakwatch.model import CPU_KEY


class ProcessProbe:
    """Reads `rss` (bytes), `uss` (bytes, when enabled), `py_blocks` (pymalloc blocks in use)
    and `cpu_seconds` (the process's CPU time so far, all threads).

    `py_blocks` is cheap Python-visible memory: it grows when Python objects accumulate, and
    stays flat when a C extension mallocs behind Python's back.
    """

    name = "process"

    def __init__(self, uss: bool = False) -> None:
        self.uss = uss
        self._pid = -1
        self._proc: psutil.Process | None = None

    def _process(self) -> psutil.Process:
        # A forked child must not read its parent's numbers.
        pid = os.getpid()
        if self._proc is None or pid != self._pid:
            self._proc = psutil.Process(pid)
            self._pid = pid
        return self._proc

    def read(self, own_blocks: int = 0) -> dict[str, float]:
        """Read memory; `own_blocks` (leakwatch's own interpreter blocks) is left out of py_blocks."""
        proc = self._process()
        values: dict[str, float] = {
            "py_blocks": float(sys.getallocatedblocks() - own_blocks),
            # How busy the process is: a leak that stops with its load is told from a
            # structure that fills up while the load goes on (see detector.held).
            CPU_KEY: time.process_time(),
        }
        if self.uss:
            full = proc.memory_full_info()
            values["rss"] = float(full.rss)
            values["uss"] = float(full.uss)
        else:
            values["rss"] = float(proc.memory_info().rss)
        return values


# At most this many threads' scheduler statistics are read per tick (a pool of hundreds of
# idle threads adds nothing but file reads).
SCHED_THREADS = 256


def run_and_wait_seconds(task_dir: str = "/proc/self/task") -> tuple[float, float] | None:
    """CPU seconds this process's threads ran, and seconds they waited on a run queue for a
    core, since they started (Linux `schedstat`); None where the kernel does not say.

    The two together tell how much of a core the process gets when it wants one: a process
    sharing its core with another busy one waits about as long as it runs.
    """
    try:
        tasks = os.listdir(task_dir)
    except OSError:
        return None
    ran = waited = 0
    seen = 0
    for tid in tasks[:SCHED_THREADS]:
        try:
            with open(os.path.join(task_dir, tid, "schedstat"), encoding="ascii") as f:
                fields = f.read().split()
            ran += int(fields[0])
            waited += int(fields[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended, or a kernel without schedstats
        seen += 1
    return (ran / 1e9, waited / 1e9) if seen else None


# cgroup v1 reports "no limit" as a huge number near 2**63; anything above this is no limit.
_V1_UNLIMITED = 1 << 60


def cgroup_memory_limit(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> int | None:
    """The tightest memory limit of this process's cgroup and its ancestors, in bytes; None if unlimited.

    Reads cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`, at the process's own cgroup
    path and every parent up to the mount root (a pod's limit often sits one level up).
    """
    paths: list[str] = []
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    paths.extend(_ancestors(os.path.join(root, path.lstrip("/")), root, "memory.max"))
                elif "memory" in controllers.split(","):
                    base = os.path.join(root, "memory")
                    paths.extend(_ancestors(os.path.join(base, path.lstrip("/")), base, "memory.limit_in_bytes"))
    except (OSError, ValueError):
        pass
    paths.extend([os.path.join(root, "memory.max"), os.path.join(root, "memory", "memory.limit_in_bytes")])
    limits = [limit for limit in map(_read_limit, dict.fromkeys(paths)) if limit is not None]
    return min(limits) if limits else None


def _ancestors(directory: str, stop: str, filename: str) -> list[str]:
    out = []
    directory = os.path.normpath(directory)
    stop = os.path.normpath(stop)
    while True:
        out.append(os.path.join(directory, filename))
        if directory == stop or not directory.startswith(stop):
            return out
        directory = os.path.dirname(directory)


def _read_limit(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return value if 0 < value < _V1_UNLIMITED else None
