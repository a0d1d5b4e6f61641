"""Where a path starts: modules, classes, the frames of running threads (and what their locals
hold), running asyncio tasks. Objects nothing gc-tracked refers to are roots too ("held outside
Python": a C extension, or a leaked reference count); the search decides those.

This package's own frames are neither roots nor holders: they hold what the search holds.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import threading
import types

from leakwatch.probes.census import type_key
from leakwatch.refgraph.model import Path, Step

# Among roots at the same distance, the one that names the code best wins.
ROOT_PRIORITY = {"module": 0, "class": 1, "task": 2, "thread": 3, "outside": 4}
# `leakwatch.refgraph`: every module in it runs the search or is called by it.
PACKAGE = __name__.rpartition(".")[0]


def is_search_frame(frame: types.FrameType) -> bool:
    """Whether `frame` runs code of a module of this package (the search, the stranded-task
    check, what they call): such frames hold the search's samples and trees, never the
    application's. Matched by the module's globals themselves, not by name alone, and
    without calling anything a `dict` subclass could override."""
    name = dict.get(frame.f_globals, "__name__")
    if type(name) is not str or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
        return False
    module = sys.modules.get(name)
    return module is not None and getattr(module, "__dict__", None) is frame.f_globals


@dataclasses.dataclass
class ThreadRoots:
    """The running threads' frames, and (read only when needed) what their locals hold.

    A running frame's locals are invisible to the collector (its frame object does not traverse
    a frame the thread still runs), so an object only a local holds looks held outside Python.
    Before calling anything "held outside Python", the search reads the threads' `f_locals`
    once. On Python 3.10-3.12 that leaves a snapshot dict on each frame until it returns, which
    keeps the locals' values alive that long: the reason it is read only when needed.
    """

    frames: dict[int, str] = dataclasses.field(default_factory=dict)  # id(frame) -> "thread T in f"
    chain: list[tuple[object, str]] = dataclasses.field(default_factory=list)  # frames whose locals count
    locals: dict[int, tuple[str, str]] = dataclasses.field(default_factory=dict)  # id(value) -> (where, name)
    snapshots: dict[int, str] = dataclasses.field(default_factory=dict)  # id(f_locals dict) -> where
    kept: list[object] = dataclasses.field(default_factory=list)
    read: bool = False

    def read_locals(self) -> None:
        if self.read:
            return
        self.read = True
        for frame, where in self.chain:
            snapshot = frame.f_locals  # type: ignore[attr-defined]
            if isinstance(snapshot, dict):  # 3.10-3.12: a dict that now holds the values
                self.snapshots[id(snapshot)] = where
                self.kept.append(snapshot)
            for name, value in list(snapshot.items()):
                if id(value) not in self.locals and gc.is_tracked(value):
                    self.locals[id(value)] = (where, name)


def thread_roots() -> ThreadRoots:
    """Frames of every running thread, except this search's own (this package's frames on top
    of each stack, and on the searching thread the frame that called into the package)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    roots = ThreadRoots()
    for ident, frame in sys._current_frames().items():
        while frame is not None and is_search_frame(frame):
            frame = frame.f_back  # type: ignore[assignment]
        if ident == me:
            # The caller of the search: its locals (the graph request) are not holders.
            frame = frame.f_back if frame is not None else None  # type: ignore[assignment]
        while frame is not None:
            where = f"{names.get(ident, ident)} in {frame.f_code.co_name}"
            roots.frames[id(frame)] = where
            roots.kept.append(frame)  # alive while its id is a key: ids of freed frames get reused
            if frame.f_code.co_name != "<module>":  # a module frame's locals are the module's globals
                roots.chain.append((frame, where))
            frame = frame.f_back  # type: ignore[assignment]
    return roots


def from_frame(path: Path, start: int, roots: ThreadRoots) -> Path:
    """Start a path a thread's local holds at that thread's frame, the edge named by the local."""
    if start in roots.locals:
        _, local = roots.locals[start]
        acc = None if path.accumulation is None else path.accumulation + 1
        return dataclasses.replace(
            path, steps=(Step("frame"), *path.steps), edges=(f"local {local}", *path.edges), accumulation=acc
        )
    if start in roots.snapshots and path.edges and path.edges[0].startswith("['"):
        # 3.10-3.12: the frame's f_locals snapshot dict, keyed by the locals' names.
        acc = None if path.accumulation == 0 else path.accumulation
        return dataclasses.replace(
            path,
            steps=(Step("frame"), *path.steps[1:]),
            edges=(f"local {path.edges[0][2:-2]}", *path.edges[1:]),
            accumulation=acc,
        )
    return path


def root_of(obj: object, threads: ThreadRoots) -> tuple[str, str] | None:
    if isinstance(obj, types.ModuleType):
        return "module", str(obj.__name__) if isinstance(getattr(obj, "__name__", None), str) else "?"
    if isinstance(obj, type):
        return "class", type_key(obj)
    if id(obj) in threads.frames:
        return "thread", threads.frames[id(obj)]
    if id(obj) in threads.locals:
        return "thread", threads.locals[id(obj)][0]
    if id(obj) in threads.snapshots:
        return "thread", threads.snapshots[id(obj)]
    if _is_task(obj):
        return "task", "asyncio task"
    return None


def _is_task(obj: object) -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(obj, asyncio.Task)
