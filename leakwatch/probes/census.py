"""The gc census: live gc-tracked objects per type, in one pass over `gc.get_objects()`.

Counted in C where the extension was built (`_census.c`: the list made, counted by type and
dropped in one call, about 1.5x `gc.get_objects()` alone); otherwise in Python, at about what
`gc.get_objects()` plus a C-level tally costs (the floor), with the tally in slices that offer
the GIL to waiting threads between them. Never calls `gc.collect()` (objgraph #61: a
forced collection hides the garbage cycles one may be looking at, and costs as much again).
The object list is dropped before `read()` returns (pympler #169 leaked by keeping it).
"""

from __future__ import annotations

import builtins
import collections
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain, compress, islice, repeat
from operator import is_not, methodcaller
from time import sleep

from leakwatch.own import is_own_module

# Slices of this many objects take about 2 ms to tally at 1M objects, under the default
# 5 ms thread switch interval; each slice is counted in runs of RUN objects.
SLICE = 32_768
RUN = 256


def _count_elements_fallback(mapping: dict[type, int], iterable: Iterable[type]) -> None:
    for item in iterable:
        mapping[item] = mapping.get(item, 0) + 1


# The C helper behind Counter; absent on interpreters without the _collections accelerator.
_count_elements = getattr(collections, "_count_elements", _count_elements_fallback)

_count_types: Callable[[Callable[[], list[object]]], dict[type, int]] | None
try:  # the census's own C tally, built at install where a compiler is (setup.py); optional
    from leakwatch.probes._census import count_types as _count_types
except ImportError:
    _count_types = None

Visitor = Callable[[list[object], dict[str, type]], None]


def live_objects() -> list[object]:
    """`gc.get_objects()` without tuples, for walks that give other threads the GIL.

    A tuple that C code is still filling (`tuple(generator)` builds one, then resizes it) is
    already gc-tracked, and resizing it fails with SystemError ("bad argument to internal
    function") while anyone else holds a reference to it: a list of every object, held while
    another thread runs, breaks that thread's `tuple(...)` (CPython #39117; 3.13 builds it
    untracked, gh-107137, but other C code still resizes tracked tuples). The census keeps
    types, never objects (see `every_object`); here the list of every object lives for two
    statements, and the list returned holds no tuple.
    """
    objs = gc.get_objects()
    return list(compress(objs, map(is_not, map(type, objs), repeat(tuple))))


def every_object() -> Iterator[object]:
    """An iterator that calls `gc.get_objects()` when it is first read, from C.

    Consumed by a C function (`list(map(type, every_object()))`), the list of every object is
    made, read and dropped with no Python bytecode in between, so no other thread runs while
    it exists. A plain `gc.get_objects()` returns to the interpreter first, which may hand the
    GIL over right there.
    """
    return chain.from_iterable(map(methodcaller("__call__"), (gc.get_objects,)))


def type_key(tp: type) -> str:
    """`module.QualName` for a class; builtins bare (`dict`), as the Suspect contract says."""
    module = getattr(tp, "__module__", None)
    qualname = getattr(tp, "__qualname__", None)
    if not isinstance(qualname, str):
        qualname = getattr(tp, "__name__", "?")
    if not isinstance(module, str) or module == builtins.__name__:
        return str(qualname)
    return f"{module}.{qualname}"


class CensusProbe:
    """Counts live gc-tracked objects by type. Stateless between reads."""

    name = "census"

    def __init__(self, slice_size: int = SLICE, accelerated: bool = True) -> None:
        self.slice_size = slice_size
        # Counting in C adds about half of what making the list of every object costs (one
        # read of each object's type), and nothing per object after it: no list of types, no
        # tally. It holds the GIL for the whole count, as the one C call in Python holds it.
        self.count_types = _count_types if accelerated else None

    def read(self, visit: Visitor | None = None, own: Mapping[str, int] | None = None) -> dict[str, float]:
        """Return `{type_key: count}`; `visit(objects, types_by_key)` may look at the heap first.

        `own` counts objects leakwatch itself holds, by type key (its history's arrays); they are
        subtracted. The visitor runs while the object list is alive and must not keep references.
        """
        # Only the objects' types are kept: see `live_objects` for why no object is. A visitor
        # gets the objects from the same walk, tuples left out.
        objs: list[object] = []
        kinds: list[type] = []
        by_type: dict[type, int] | None = None
        if visit is None and self.count_types is not None:
            by_type = self.count_types(gc.get_objects)
        elif visit is None:
            kinds = list(map(type, every_object()))
        else:
            everything = gc.get_objects()
            kinds = list(map(type, everything))
            objs = list(compress(everything, map(is_not, kinds, repeat(tuple))))
            del everything
        try:
            if by_type is None:
                by_type = self._tally(kinds)
            counts: dict[str, float] = {}
            types: dict[str, type] = {}
            for tp, n in by_type.items():
                if is_own_module(getattr(tp, "__module__", None)):
                    continue
                key = type_key(tp)
                counts[key] = counts.get(key, 0) + n
                types[key] = tp
            del by_type
            for key, n in (own or {}).items():
                if key in counts:
                    counts[key] = max(0, counts[key] - n)
            if visit is not None:
                visit(objs, types)
            return counts
        finally:
            # pympler #169: keeping this list past the tick keeps every object in it alive.
            del kinds, objs

    def _tally(self, kinds: list[type]) -> dict[type, int]:
        """Count objects by type in small runs, merging each run's counts into the total.

        A run of at most 256 objects counts only to 256, and CPython keeps those small ints
        ready-made, so the per-object work allocates nothing: about as fast as one big
        `Counter` untraced, and ten times faster while tracemalloc traces (where a big
        Counter's every increment is a traced allocation).
        """
        total: dict[type, int] = {}
        get = total.get
        it = iter(kinds)
        runs_per_slice = max(1, self.slice_size // RUN)
        for _ in range(0, len(kinds), RUN * runs_per_slice):
            for _ in range(runs_per_slice):
                run: dict[type, int] = {}
                _count_elements(run, islice(it, RUN))
                for tp, n in run.items():
                    total[tp] = get(tp, 0) + n
            # Offer the GIL between slices: without this, a waiting thread gets it only when
            # the 5 ms switch interval expires, which is longer than a whole small census.
            sleep(0)
        return total
