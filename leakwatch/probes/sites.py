"""Allocation sites from tracemalloc, traced in bounded windows.

Always-on tracing slows allocation several times and a full snapshot of a big heap stalls
for seconds, so this probe traces in *windows*: a trace started at t0 holds only the blocks
allocated since t0 that are still alive, which is exactly what a leak leaves behind, and
stays small when the program only churns. A window ends after `trace_window` seconds, or
early when tracemalloc's own memory passes `trace_max_memory`, which bounds every snapshot.

If the application started tracemalloc itself, this probe reads it and never stops it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import fnmatch
import functools
import importlib.util
import json
import os
import site
import sys
import sysconfig
import time
import tracemalloc
from collections.abc import Iterable, Mapping, Sequence
from itertools import compress

from leakwatch.own import is_own_file

# Sampled instances per suspect type, and how far back from the newest objects to look.
INSTANCES_PER_TYPE = 32
MAX_SCAN = 262_144
MAX_ATTRIBUTED_TYPES = 16
# Frames a window traces while a suspect's allocating line is in a library, to find the
# application's line that called into it; and how many such lines the probe remembers.
USER_FRAMES = 16
MAX_USER_LINES = 1024


# The slowdown measurement: rounds of `_allocation_heavy_work` per timing, and timings per mode.
SLOWDOWN_ROUNDS = 4
SLOWDOWN_REPEAT = 3


def _allocation_heavy_work() -> int:
    """A request's worth of small allocations: dicts, lists, strings, a JSON round trip."""
    rows = [{"id": i, "name": f"user{i}", "tags": [str(i), "a", "b"], "score": i * 0.5} for i in range(24)]
    return len(json.loads(json.dumps({"rows": rows, "total": len(rows)}))["rows"])


def _cpu_of_work() -> float:
    started = time.thread_time()
    for _ in range(SLOWDOWN_ROUNDS):
        _allocation_heavy_work()
    return time.thread_time() - started


def measure_slowdown(frames: int) -> float:
    """How many times slower allocation-heavy code runs while tracemalloc traces `frames`
    frames, timed on this thread's CPU clock (other threads' work does not count): the most
    a tracing window can slow the application. Traces for a few milliseconds to find out; 0.0
    when tracing is on already (the application's own, which costs leakwatch nothing).
    """
    if tracemalloc.is_tracing():
        return 0.0
    untraced = min(_cpu_of_work() for _ in range(SLOWDOWN_REPEAT))
    tracemalloc.start(frames)
    try:
        traced = min(_cpu_of_work() for _ in range(SLOWDOWN_REPEAT))
    finally:
        tracemalloc.stop()
    return max(1.0, traced / max(untraced, 1e-6))


def _preheader_lookup() -> tuple[object, int] | None:
    """CPython 3.11's `get_object_traceback` misses every object with a managed `__dict__`
    (instances of plain classes): it looks the trace up at the object's gc header, but such
    objects were allocated two pointers before it (gh-101430, fixed in 3.12). tracemalloc's C
    lookup by address finds them there; it only reads tracemalloc's own table, never the
    address. Returns (lookup, bytes before the object), or None where not needed or absent.
    """
    if sys.version_info[:2] != (3, 11):
        return None
    try:
        lookup = ctypes.pythonapi._PyTraceMalloc_GetTraceback
    except AttributeError:
        return None
    lookup.restype = ctypes.py_object
    lookup.argtypes = (ctypes.c_uint, ctypes.c_size_t)
    pointer = ctypes.sizeof(ctypes.c_void_p)
    return lookup, 4 * pointer  # the gc header (two words) and the managed dict (two more)


_PREHEADER = _preheader_lookup()
_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT in 3.11


def object_traceback(obj: object) -> tracemalloc.Traceback | None:
    """`tracemalloc.get_object_traceback(obj)`, including, on 3.11, instances of plain classes."""
    tb = tracemalloc.get_object_traceback(obj)
    if tb is None and _PREHEADER is not None and type(obj).__flags__ & _MANAGED_DICT:
        lookup, before = _PREHEADER
        frames = lookup(0, id(obj) - before)  # type: ignore[operator]
        if frames is not None:
            return tracemalloc.Traceback(frames)
    return tb


def _library_dirs() -> tuple[str, ...]:
    """Where the standard library and installed packages live (this interpreter's and its venv's)."""
    paths = sysconfig.get_paths()
    dirs = {paths.get(name, "") for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # an old virtualenv's site module
        pass
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else ""
    dirs.add(user if isinstance(user, str) else "")
    return tuple(sorted(os.path.join(os.path.realpath(d), "") for d in dirs if d))


_LIBRARY_DIRS = _library_dirs()


@functools.lru_cache(maxsize=4096)
def is_library_file(filename: str) -> bool:
    """Whether a source file belongs to the standard library or an installed package (not to
    the application, whose own lines a user can change)."""
    if filename.startswith("<"):
        return True  # <frozen ...>, <string> of the import system
    return filename.startswith(_LIBRARY_DIRS) or os.path.realpath(filename).startswith(_LIBRARY_DIRS)


def user_line(frames: Sequence[tracemalloc.Frame]) -> str:
    """When the allocating frame (the last) is in a library: the nearest calling frame in the
    application's code (`path:LINE`), skipping libraries and leakwatch; "" otherwise, or when
    the traceback is too short to reach one."""
    if not frames or not is_library_file(frames[-1].filename):
        return ""
    for frame in reversed(frames):
        if not is_library_file(frame.filename) and not is_own_file(frame.filename):
            return f"{frame.filename}:{frame.lineno}"
    return ""


def site_key(frames: Iterable[tracemalloc.Frame]) -> str:
    """`path/file.py:LINE` of the allocating frame, then its callers, joined by " <- "."""
    return " <- ".join(f"{f.filename}:{f.lineno}" for f in reversed(list(frames)))


def _exposition_files() -> tuple[str, ...]:
    """prometheus_client's modules that run only while a scrape renders.

    A scrape frees hundreds of small dicts and tuples; CPython keeps freed dicts and tuples on
    free lists and hands them to the next allocations, and tracemalloc keeps blaming the line
    that first allocated them. So when the application leaks dicts, part of its leak would be
    reported at prometheus_client's `add_metric`, where leakwatch's own scrapes allocated them.
    The application's own metrics (metrics.py, values.py) stay visible.
    """
    spec = importlib.util.find_spec("prometheus_client")
    if spec is None or not spec.submodule_search_locations:
        return ()
    root = list(spec.submodule_search_locations)[0]
    names = ("metrics_core.py", "exposition.py", "samples.py", "*_collector.py", os.path.join("openmetrics", "exposition.py"))
    return tuple(os.path.join(root, name) for name in names)


_IGNORED = (
    *_exposition_files(),
    tracemalloc.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
)


def _ignored(filename: str) -> bool:
    """Whether allocations at this file are leakwatch's own or the import system's."""
    return is_own_file(filename) or any(fnmatch.fnmatchcase(filename, pattern) for pattern in _IGNORED)


@dataclasses.dataclass(frozen=True)
class _Stat:
    """One site's live bytes and blocks, as `tracemalloc.Statistic` has them."""

    traceback: Sequence[tracemalloc.Frame]
    size: int
    count: int


class SiteProbe:
    """Starts and stops tracing windows and reads live bytes per allocation site."""

    name = "sites"

    def __init__(self, frames: int = 1, max_sites: int = 256, max_memory: int = 32 * 1024**2) -> None:
        self.frames = frames
        self.max_sites = max_sites
        self.max_memory = max_memory
        self.window = 0  # number of the current window; 0 when not tracing
        self.windows_started = 0
        self.started_at = 0.0
        self._ours = False
        self._attribute_turn = 0
        # Set while a suspect's allocating line is in a library and its caller is not known:
        # the next window traces `USER_FRAMES` frames (keys still name `frames` of them).
        self.deep = False
        self._traced_frames = frames
        # Site key -> the application's line that called into the library allocating there.
        self.user_lines: dict[str, str] = {}

    @property
    def external(self) -> bool:
        """True when the application traces on its own account."""
        return tracemalloc.is_tracing() and not self._ours

    @property
    def active(self) -> bool:
        return self.window != 0 and tracemalloc.is_tracing()

    def start_window(self, now: float) -> None:
        """Begin a window: start tracing unless someone else already traces."""
        if self.active:
            return
        if not tracemalloc.is_tracing():
            self._traced_frames = max(self.frames, USER_FRAMES) if self.deep else self.frames
            tracemalloc.start(self._traced_frames)
            self._ours = True
        self.windows_started += 1
        self.window = self.windows_started
        self.started_at = now

    def stop_window(self) -> None:
        """End the window; stop tracing only if this probe started it.

        An application that called `tracemalloc.start(n)` during our window with another
        frame count has taken tracing over (the count changed), and keeps it.
        """
        if self._ours and tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == self._traced_frames:
            tracemalloc.stop()
        self._ours = False
        self.window = 0

    def over_budget(self) -> bool:
        return tracemalloc.get_tracemalloc_memory() > self.max_memory

    def read(self) -> tuple[dict[str, float], dict[str, float]]:
        """Live traced bytes and blocks per site (the largest `max_sites`), while a window is open."""
        if not self.active:
            return {}, {}
        snapshot = tracemalloc.take_snapshot()
        limit = tracemalloc.get_traceback_limit()
        key_type = "lineno" if self.frames == 1 and limit == 1 else "traceback"
        stats: Sequence[tracemalloc.Statistic | _Stat] = snapshot.statistics(key_type)
        del snapshot
        if limit > self.frames:
            stats = self._keyed_by_frames(list(stats))  # type: ignore[arg-type]
        # Filtering the few grouped sites is far cheaper than Snapshot.filter_traces, which
        # matches every trace against every pattern in Python.
        ignored: dict[str, bool] = {}
        top = []
        for stat in stats:
            filename = stat.traceback[-1].filename
            if filename not in ignored:
                ignored[filename] = _ignored(filename)
            if not ignored[filename]:
                top.append(stat)
                if len(top) >= self.max_sites:
                    break
        keys = [site_key(s.traceback) for s in top]
        return (
            {k: float(s.size) for k, s in zip(keys, top, strict=False)},
            {k: float(s.count) for k, s in zip(keys, top, strict=False)},
        )

    def _keyed_by_frames(self, stats: list[tracemalloc.Statistic]) -> list[_Stat]:
        """Statistics of a window traced deeper than `frames`, merged by their last `frames`
        frames (so site keys stay what they are in other windows), largest first; each site's
        caller in the application is noted in `user_lines` (the one holding the most bytes)."""
        merged: dict[str, _Stat] = {}
        callers: dict[str, dict[str, int]] = {}
        for stat in stats:
            frames = list(stat.traceback)
            kept = frames[-self.frames :]
            key = site_key(kept)
            seen = merged.get(key)
            merged[key] = (
                _Stat(kept, stat.size, stat.count)
                if seen is None
                else _Stat(seen.traceback, seen.size + stat.size, seen.count + stat.count)
            )
            line = user_line(frames)
            if line:
                tally = callers.setdefault(key, {})
                tally[line] = tally.get(line, 0) + stat.size
        for key, tally in callers.items():
            self._note_user_line(key, max(tally, key=tally.__getitem__))
        return sorted(merged.values(), key=lambda stat: stat.size, reverse=True)

    def _note_user_line(self, key: str, line: str) -> None:
        lines = self.user_lines
        lines.pop(key, None)
        lines[key] = line
        while len(lines) > MAX_USER_LINES:
            del lines[next(iter(lines))]

    def overhead(self) -> dict[str, float]:
        """Traced bytes and tracemalloc's own memory, for the process series."""
        if not tracemalloc.is_tracing():
            return {}
        traced, _peak = tracemalloc.get_traced_memory()
        return {"traced": float(traced), "trace_overhead": float(tracemalloc.get_tracemalloc_memory())}

    def attribute(self, objs: list[object], types: Mapping[str, type], wanted: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Allocation sites of live instances of each wanted type allocated in this window.

        Looks at both ends of the gc list, where the youngest objects sit (generation 0 first,
        the latest promotions last), with C-level iterators over at most `MAX_SCAN` objects per
        end, in one pass for all the types asked for. At most `MAX_ATTRIBUTED_TYPES` types are
        looked up per call, taking turns across calls, so a heap with hundreds of growing types
        costs no more than one with a few. Keeps no reference to any instance.
        """
        if not self.active:
            return {}
        asked = [key for key in wanted if key in types]
        if len(asked) > MAX_ATTRIBUTED_TYPES:
            turn = self._attribute_turn % len(asked)
            asked = (asked[turn:] + asked[:turn])[:MAX_ATTRIBUTED_TYPES]
            self._attribute_turn += MAX_ATTRIBUTED_TYPES
        # Types still looked for; a type leaves once it has enough traced instances or tries.
        looking: dict[type, str] = {types[key]: key for key in asked}
        tallies: dict[str, dict[str, int]] = {key: {} for key in asked}
        traced = dict.fromkeys(asked, 0)
        tries = dict.fromkeys(asked, 0)
        for part in (objs[:MAX_SCAN], objs[-MAX_SCAN:][::-1]):
            if not looking:
                break
            # map() is lazy, so a type dropped from `looking` stops matching at once.
            for obj in compress(part, map(looking.__contains__, map(type, part))):
                key = looking[type(obj)]
                tb = object_traceback(obj)
                if tb is not None and _ignored(tb[-1].filename):
                    continue  # leakwatch's own (the list of types asked for, say): neither a site nor a try
                tries[key] += 1
                if tb is not None:
                    frames = list(tb)
                    site = site_key(frames[-self.frames :])
                    tallies[key][site] = tallies[key].get(site, 0) + 1
                    traced[key] += 1
                    if len(frames) > self.frames:
                        line = user_line(frames)
                        if line:
                            self._note_user_line(site, line)
                if traced[key] >= INSTANCES_PER_TYPE or tries[key] >= 4 * INSTANCES_PER_TYPE:
                    del looking[type(obj)]
                    if not looking:
                        break
            obj = None
            del part
        return {key: tuple(sorted(t, key=t.__getitem__, reverse=True)[:3]) for key, t in tallies.items() if t}
