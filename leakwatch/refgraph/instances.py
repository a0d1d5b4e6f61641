"""The live objects a graph follows: a type's instances or a site's allocations, found with one
walk of the gc list (and one of what it refers to when they are not gc-tracked), and the few
chosen to search from, spread over them.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from itertools import compress
from typing import Any

from leakwatch.errors import LeakwatchError
from leakwatch.probes.census import live_objects, type_key
from leakwatch.probes.sites import object_traceback, site_key
from leakwatch.refgraph.edges import without_modules

# A graph of tuples must hold tuples, which walks otherwise leave out (see live_objects).
TUPLE_KEYS = frozenset({"tuple"})
# Objects a graph keeps to sample from, and how many gc objects' referents one step reads.
MAX_MATCHES = 100_000
REFERENT_CHUNK = 4096
# Containers the collector untracks when all they hold is untracked (see `Instances._open`).
HIDING_TYPES = frozenset({tuple, dict})


class Instances:
    """The live objects a target names, found with one walk of the gc list, plus one walk of what
    those objects refer to when the target's objects are not gc-tracked (or may not be: a site).

    Keeps at most `MAX_MATCHES` of them (`count` counts them all); the walk of referents goes
    in chunks, so other threads get the GIL between them, and stops at the deadline.
    """

    def __init__(self, kind: str, key: str, deadline: float) -> None:
        self.kind = kind
        self.key = key
        self.deadline = deadline
        self.matches: list[object] = []
        self.via: dict[int, object] = {}  # id(match) -> the untracked container that holds it
        self.count = 0
        self.passes = 1
        self.complete = True
        if kind == "site" and not tracemalloc.is_tracing():
            raise LeakwatchError(
                f"site {key[:80]!r}: objects are matched to a site by their allocation traceback, and tracemalloc "
                "is not tracing now (its window has closed); graph_on_suspect draws a site's graph while its window "
                "is open, or tracemalloc='always' keeps tracing"
            )
        objs = gc.get_objects() if key in TUPLE_KEYS else live_objects()
        try:
            if kind == "type":
                wanted = {tp for tp in set(map(type, objs)) if type_key(tp) == key}
                self.matches = list(compress(objs, map(wanted.__contains__, map(type, objs))))
                self.count = len(self.matches)
                if self.matches:
                    return
            self._walk_referents(objs)
        finally:
            del objs

    def _walk_referents(self, objs: list[object]) -> None:
        self.passes += 1
        self._kept: dict[int, object] = {}
        self._tested: set[type] = set()  # types already compared with the key
        self._wanted: set[type] = set()  # those that match it
        self._sites: dict[Any, bool] = {}  # raw traceback -> whether it is the key's site
        for i in range(0, len(objs), REFERENT_CHUNK):
            chunk = without_modules(objs[i : i + REFERENT_CHUNK])
            part = gc.get_referents(*chunk)
            if self.kind == "site":
                part.extend(chunk)  # tracked objects are allocated somewhere too
            self._add(self._hits(part), None)
            # The collector stops tracking a tuple or dict that holds only untracked objects, so
            # `(key, payload)` pairs in a list hide their payloads one level down; tracked tuples
            # are left out of the walk itself (see live_objects), and are opened here too.
            hidden = [
                obj
                for obj in compress(part, map(HIDING_TYPES.__contains__, map(type, part)))
                if type(obj) is tuple or not gc.is_tracked(obj)
            ]
            del chunk, part
            if hidden:
                self._open(hidden)
            if time.perf_counter() > self.deadline:
                self.complete = False
                break
        self.matches = list(self._kept.values())
        self._kept = {}

    def _hits(self, objs: list[object]) -> list[object]:
        if self.kind == "type":
            for tp in set(map(type, objs)) - self._tested:
                self._tested.add(tp)
                if type_key(tp) == self.key:
                    self._wanted.add(tp)
            return list(compress(objs, map(self._wanted.__contains__, map(type, objs)))) if self._wanted else []
        return [obj for obj in compress(objs, map(_raw_traceback, objs)) if self._at_site(obj)]

    def _open(self, hidden: list[object]) -> None:
        """Matches inside untracked containers, each kept with its container (`via`)."""
        hits = self._hits(gc.get_referents(*hidden))
        if not hits:
            return
        ids = set(map(id, hits))
        for container in hidden:
            self._add([obj for obj in gc.get_referents(container) if id(obj) in ids], container)

    def _add(self, hits: list[object], container: object) -> None:
        for obj in hits:
            if id(obj) in self._kept:
                continue
            self.count += 1
            if len(self._kept) < MAX_MATCHES:
                self._kept[id(obj)] = obj
                if container is not None:
                    self.via[id(obj)] = container

    def _at_site(self, obj: object) -> bool:
        raw = _raw_traceback(obj)
        if raw is None:  # on 3.11, instances of plain classes (see `object_traceback`)
            tb = object_traceback(obj)
            return tb is not None and site_key(tb) == self.key
        if raw not in self._sites:
            tb = tracemalloc.get_object_traceback(obj)
            self._sites[raw] = tb is not None and site_key(tb) == self.key
        return self._sites[raw]


# tracemalloc's C lookup without the Traceback wrapper (present 3.4-3.13); the public function
# builds an object per call, and the walk asks of every object.
_raw_traceback = getattr(tracemalloc, "_get_object_traceback", tracemalloc.get_object_traceback)


def spread(items: list[object], n: int) -> list[object]:
    """`n` items spread evenly over `items`, both ends included.

    The gc list holds the youngest objects first and the latest promoted to the oldest
    generation last; a leak's instances are most of its type's, so an even spread lands on
    them and on the few held elsewhere alike, and the counts per signature tell them apart.
    """
    if n <= 0 or not items:
        return []
    if n >= len(items):
        return list(items)
    if n == 1:
        return [items[-1]]
    step = (len(items) - 1) / (n - 1)
    return [items[round(i * step)] for i in range(n)]
