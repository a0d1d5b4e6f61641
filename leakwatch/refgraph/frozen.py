"""Holders in the frozen heap, which no referrer search can see.

`gc.get_referrers` walks the collector's generations only, and `gc.freeze()` (which a pre-fork
master calls before each fork, the `freeze` option) moves everything the master built into a
permanent generation outside them. A worker's leaked objects are its own, but the container
they pile up in (a module's list, a class's cache) was often built by the master: the search
back from the objects finds no referrer there and would call them held outside Python.

`frozen_chains` walks forward instead, from the modules, one level at a time through what
each object refers to, until it meets the objects the search back stopped at; it holds at
most `limit` objects and stops at the search's deadline. Reading an object of the frozen heap
writes its reference count, so a graph copies into the worker the shared pages it walks: a
cost paid once per graph asked for, and only for objects nothing visible holds.
"""

from __future__ import annotations

import gc
import sys
import time
import types

from leakwatch.refgraph.edges import referents


def frozen_chains(stops: set[int], ours: set[int], deadline: float, limit: int) -> dict[int, list[object]]:
    """For each id in `stops` that a forward walk from the modules reaches: the chain from a
    module to the object's holder and the object itself (`[module, ..., holder, object]`).

    Nothing is walked while nothing is frozen (`gc.get_freeze_count()` is 0): an object no
    tracked object refers to is then held outside Python indeed. (CPython 3.12 starts with a
    few hundred objects of its own frozen, so there the walk runs whenever it is needed.)
    `ours` are ids never walked through: the search's own containers, and what a target's
    search may not take as a holder.
    """
    if not stops or not gc.get_freeze_count():
        return {}
    parent: dict[int, int] = {}  # id -> id of the object the walk reached it from (0: a module)
    keep: dict[int, object] = {}  # everything walked, alive until the end: ids of freed objects get reused
    ours.update((id(parent), id(keep)))
    level: list[object] = []
    for module in list(sys.modules.values()):
        if isinstance(module, types.ModuleType) and id(module) not in keep:
            keep[id(module)] = module
            parent[id(module)] = 0
            level.append(module)
    chains: dict[int, list[object]] = {}
    while level and len(chains) < len(stops) and len(keep) < limit and time.perf_counter() < deadline:
        following: list[object] = []
        for obj in level:
            for child in referents(obj):
                cid = id(child)
                if cid in stops and cid not in chains:
                    chains[cid] = [*_chain(id(obj), parent, keep), child]
                if cid in keep or cid in ours or not gc.is_tracked(child) or isinstance(child, types.FrameType):
                    continue
                keep[cid] = child
                parent[cid] = id(obj)
                following.append(child)
            if len(keep) >= limit or time.perf_counter() > deadline:
                break
        level = following
    return chains


def _chain(oid: int, parent: dict[int, int], keep: dict[int, object]) -> list[object]:
    """The walk's path from a module to the object `oid`."""
    out = []
    while oid:
        out.append(keep[oid])
        oid = parent[oid]
    out.reverse()
    return out
