"""Process memory from psutil (RSS, optionally USS) and the interpreter's allocated block count."""

from __future__ import annotations

import os
import sys

import psutil


class ProcessProbe:
    """Reads `rss` (bytes), `uss` (bytes, when enabled) and `py_blocks` (pymalloc blocks in use).

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
        values: dict[str, float] = {"py_blocks": float(sys.getallocatedblocks() - own_blocks)}
        if self.uss:
            full = proc.memory_full_info()
            values["rss"] = float(full.rss)
            values["uss"] = float(full.uss)
        else:
            values["rss"] = float(proc.memory_info().rss)
        return values
