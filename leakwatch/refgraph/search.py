"""The breadth-first search from sampled instances back to roots (`find_paths`).

For a type, a few of its live instances are chosen, spread over the gc list (a leak's instances
are most of its type's, so most samples land on them), and a breadth-first search walks back
from them towards roots. Each step asks the collector for the referrers of the whole frontier
at once (`gc.get_referrers(*frontier)`, one C-level heap walk per level of the path, however
many objects the level holds), so a graph costs a handful of heap walks, never one per object
examined as a step-by-step search does.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
import types
from collections.abc import Mapping

from leakwatch.own import is_own_module
from leakwatch.refgraph.edges import collapse, referents, safe_edge_name
from leakwatch.refgraph.frozen import frozen_chains
from leakwatch.refgraph.instances import Instances, spread
from leakwatch.refgraph.model import Graph, Path
from leakwatch.refgraph.roots import ROOT_PRIORITY, ThreadRoots, from_frame, is_search_frame, root_of, thread_roots

DEFAULT_SAMPLES = 8
DEFAULT_MAX_DEPTH = 24
DEFAULT_BUDGET_SECONDS = 10.0
# Objects a search may hold on its trees before it stops (bounds its memory on a huge fan-in).
MAX_KEPT = 200_000
FIXED_SIZE = frozenset({"tuple", "frozenset"})  # containers that cannot be where a leak piles up


def find_paths(
    key: str,
    *,
    kind: str = "type",
    samples: int = DEFAULT_SAMPLES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    reprs: bool = False,
) -> Graph:
    """Retention paths for live instances of the type `key` (`module.QualName`; `kind="type"`)
    or for live objects allocated at the site `key` (`path/file.py:LINE`; `kind="site"`).

    Types the collector does not track (`bytes`, `str`, ...) and objects allocated at a site are
    found among what tracked objects refer to, at the cost of one more heap walk. A site needs
    tracemalloc tracing, and finds only objects allocated while it traced; `LeakwatchError`
    when nothing traces. `reprs=True` adds each step's scrubbed, truncated `repr()`, which runs
    the application's `__repr__` methods: off by default.
    """
    started = time.perf_counter()
    deadline = started + budget_seconds
    # Ids of the search's own containers, which hold the sampled instances. Only containers
    # alive for the whole search go in: a freed one's id could be reused by an application object.
    ours: set[int] = set()
    # Finding the instances may take half the budget at most: the search gets the rest.
    found = Instances(kind, key, started + budget_seconds / 2)
    chosen = spread(found.matches, samples)
    via = {id(obj): found.via[id(obj)] for obj in chosen if id(obj) in found.via}
    found.matches = []
    found.via = {}
    ours.update((id(chosen), id(via)))
    search = Search(chosen, ours, max_depth, deadline, reprs, via)
    try:
        paths = search.run()
    finally:
        search.targets = []
        search.via = {}
        chosen = []
        via = {}
    grouped: dict[str, Path] = {}
    for path in paths:
        seen = grouped.get(path.signature)
        grouped[path.signature] = path if seen is None else dataclasses.replace(seen, count=seen.count + 1)
    ordered = tuple(sorted(grouped.values(), key=lambda p: (-p.count, len(p.edges))))
    return Graph(
        target=key,
        instances=found.count,
        sampled=len(paths),
        paths=ordered,
        passes=search.passes + found.passes,
        seconds=time.perf_counter() - started,
        complete=search.complete and found.complete,
        released=search.released,
        kind=kind,
    )


class Search:
    """Breadth-first searches from each sampled instance back to a root, sharing heap walks:
    each level asks for the referrers of every search's frontier at once."""

    def __init__(
        self,
        targets: list[object],
        ours: set[int],
        max_depth: int,
        deadline: float,
        reprs: bool = False,
        via: dict[int, object] | None = None,
    ) -> None:
        self.targets = targets
        self.reprs = reprs
        self.via = {} if via is None else via  # id(target) -> the untracked container holding it
        # id(target) -> ids of objects never taken as its holders (see `tasks.stranded_tasks`).
        self.excluded: dict[int, set[int]] = {}
        self.unheld: dict[int, tuple[str, str, int]] = {}  # target -> the nearest object nothing holds
        self.frozen: set[int] = set()  # targets whose path runs through the frozen heap
        self.found: dict[int, tuple[str, str, int]] = {}
        self.ours = ours
        self.max_depth = max_depth
        self.deadline = deadline
        self.passes = 0
        self.complete = True
        self.roots = ThreadRoots()
        self.released = 0  # samples the application let go of while the search ran
        self.baseline_id = 0

    def run(self) -> list[Path]:
        # No comprehension or generator in here may name an object searched: the compiler would
        # keep it in a cell, and that cell would show up as one of its referrers.
        roots = thread_roots()
        keep: dict[int, object] = {}  # every object on a search tree, alive until the end
        parents: dict[int, dict[int, tuple[int, str] | None]] = {}  # target -> id -> (child id, edge)
        frontiers: dict[int, set[int]] = {}
        found: dict[int, tuple[str, str, int]] = {}  # target -> (root kind, root name, root id)
        self.found = found
        # Held only by `keep`, as everything walked is: the reference count of an object that
        # only the search still holds.
        baseline = _Baseline()
        keep[id(baseline)] = baseline
        self.baseline_id = id(baseline)
        del baseline
        for t in self.targets:
            keep[id(t)] = t
            parents[id(t)] = {id(t): None}
            frontiers[id(t)] = {id(t)}
            container = self.via.get(id(t))
            if container is not None:
                # The collector cannot see an untracked container's referents, nor find it as
                # a referrer: start the search at the container that holds the target.
                keep[id(container)] = container
                parents[id(t)][id(container)] = (id(t), safe_edge_name(container, t))
                frontiers[id(t)] = {id(container)}
        t = container = None
        self.via.clear()
        self.roots = roots
        self.ours.update(map(id, (roots, roots.frames, roots.chain, roots.locals, roots.snapshots, roots.kept)))
        self.ours.update(map(id, (keep, parents, frontiers, found, self.__dict__)))
        depth = 0
        while True:
            live_ids: set[int] = set()
            self.ours.add(id(live_ids))
            for tid, frontier in frontiers.items():
                if tid in found:
                    continue
                best: tuple[str, str, int] | None = None
                for oid in frontier:
                    if oid == tid:
                        continue  # a target is not its own holder, even a task or a class
                    root = root_of(keep[oid], roots)
                    if root is not None and (best is None or ROOT_PRIORITY[root[0]] < ROOT_PRIORITY[best[0]]):
                        best = (root[0], root[1], oid)
                if best is None:
                    live_ids.update(frontier)
                else:
                    found[tid] = best
            pending = [tid for tid in frontiers if tid not in found]
            if not pending or not live_ids:
                break
            if depth >= self.max_depth or time.perf_counter() > self.deadline:
                self.complete = False
                break
            self._level(live_ids, keep, parents, frontiers, found, pending)
            depth += 1
        self._through_frozen(keep, parents, found)
        for tid, nearest in self.unheld.items():
            found.setdefault(tid, nearest)
        paths = []
        for tid, (kind, name, start) in found.items():
            if kind == "released":
                self.released += 1
                continue
            if kind == "module" and is_own_module(name) or kind == "class" and is_own_module(name.rpartition(".")[0]):
                continue  # a sample leakwatch itself holds (its own lists, say): no path of the application's
            path = self._path(tid, kind, name, start, parents[tid], keep)
            if tid in self.frozen:
                path = dataclasses.replace(path, frozen=True)
            paths.append(from_frame(path, start, roots) if kind == "thread" else path)
        return paths

    def _through_frozen(
        self,
        keep: dict[int, object],
        parents: dict[int, dict[int, tuple[int, str] | None]],
        found: dict[int, tuple[str, str, int]],
    ) -> None:
        """For targets the search back stopped at an object nothing visible holds, look for
        that object's holder in the frozen heap (`frozen.frozen_chains`) and join the chain
        from a module to it onto the target's tree, starting at the root nearest the holder."""
        stops = {tid: nearest[2] for tid, nearest in self.unheld.items() if nearest[0] == "outside" and tid not in found}
        if not stops:
            return
        # Never through the search's own objects, nor through what a target's search may not
        # take as a holder (a stranded-task check's task and its coroutine).
        avoid = set(self.ours)
        for tid in stops:
            avoid.update(self.excluded.get(tid, ()))
        self.ours.add(id(avoid))
        chains = frozen_chains(set(stops.values()), avoid, self.deadline, MAX_KEPT)
        for tid, stop in stops.items():
            chain = chains.get(stop)
            if chain is None:
                continue
            tree = parents[tid]
            for holder, held in zip(chain, chain[1:], strict=False):
                if id(holder) not in tree:
                    tree[id(holder)] = (id(held), safe_edge_name(holder, held))
                    keep[id(holder)] = holder
            for obj in reversed(chain[:-1]):
                root = root_of(obj, self.roots)
                if root is not None:
                    found[tid] = (root[0], root[1], id(obj))
                    self.frozen.add(tid)
                    break
            chain = holder = held = obj = None
        chains.clear()

    def _level(
        self,
        live_ids: set[int],
        keep: dict[int, object],
        parents: dict[int, dict[int, tuple[int, str] | None]],
        frontiers: dict[int, set[int]],
        found: dict[int, tuple[str, str, int]],
        pending: list[int],
    ) -> None:
        """One heap walk: the referrers of every frontier object; moves each search one level back."""
        live: list[object] = []
        self.ours.add(id(live))
        for oid in live_ids:
            live.append(keep[oid])
        # The argument tuple is built here and added to ours: `f(*t)` passes an exact tuple on
        # as it is, where `f(*list)` would build one the search could not tell from a holder.
        args = tuple(live)
        live.clear()
        self.ours.add(id(args))
        referrers = gc.get_referrers(*args)
        del args
        self.passes += 1
        self.ours.add(id(referrers))
        held: dict[int, set[int]] = {tid: set() for tid in pending}  # target -> its frontier objects held
        following: dict[int, set[int]] = {tid: set() for tid in pending}
        edges: dict[tuple[int, int], str] = {}
        self.ours.update(map(id, (held, following, edges)))
        self.ours.update(map(id, held.values()))
        excluded = self.excluded
        for ref in referrers:
            rid = id(ref)
            if rid in self.ours or _is_ours(ref):
                continue
            for child in referents(ref):
                cid = id(child)
                if cid not in live_ids:
                    continue
                for tid in pending:
                    if cid not in frontiers[tid] or (excluded and rid in excluded.get(tid, ())):
                        continue
                    held[tid].add(cid)
                    tree = parents[tid]
                    if rid not in tree:
                        if (rid, cid) not in edges:
                            edges[(rid, cid)] = safe_edge_name(ref, child)
                        tree[rid] = (cid, edges[(rid, cid)])
                        following[tid].add(rid)
                        keep[rid] = ref
            child = None
            if len(keep) > MAX_KEPT:
                self.complete = False
                break
        ref = None
        referrers.clear()
        for tid in pending:
            for oid in frontiers[tid]:
                if oid in held[tid]:
                    continue
                if self._released(keep, oid, is_target=oid == tid):
                    if oid == tid:
                        found[tid] = ("released", "", oid)
                        break
                    # A holder let go of meanwhile is no path any more; the rest of the
                    # frontier may still be one. Released, if the search finds no root.
                    self.unheld.setdefault(tid, ("released", "", oid))
                    continue
                self.roots.read_locals()
                if oid in self.roots.locals:
                    found[tid] = ("thread", self.roots.locals[oid][0], oid)
                    break
                # Nothing Python can see holds it: a C extension, a leaked reference count, or
                # an object in flux. A root the rest of the frontier reaches says more, so this
                # stands only if the search finds none (and over a holder let go of).
                if self.unheld.get(tid, ("",))[0] != "outside":
                    self.unheld[tid] = ("outside", "held outside Python", oid)
                break
            frontiers[tid] = following[tid]

    def _released(self, keep: Mapping[int, object], oid: int, *, is_target: bool) -> bool:
        """True when only the search still holds the object: the application dropped it while
        the search ran, so it is neither a leak nor held outside Python. A target is held once
        more, by the list of samples."""
        ours = sys.getrefcount(keep[self.baseline_id]) + (1 if is_target else 0)
        return sys.getrefcount(keep[oid]) <= ours

    def _path(
        self, tid: int, kind: str, name: str, start: int, tree: Mapping[int, tuple[int, str] | None], keep: Mapping[int, object]
    ) -> Path:
        chain: list[object] = [keep[start]]
        edges: list[str] = []
        current = start
        while current != tid:
            link = tree[current]
            assert link is not None
            current, edge = link
            edges.append(edge)
            chain.append(keep[current])
        steps, named = collapse(chain, edges, self.reprs)
        accumulation = None
        for i in range(len(steps) - 2, 0, -1):
            if steps[i].size is not None and steps[i].type not in FIXED_SIZE:
                accumulation = i
                break
        return Path(root=kind, root_name=name, steps=steps, edges=tuple(named), accumulation=accumulation)


class _Baseline:
    """A private object the search holds the way it holds what it walks (see `Search._released`)."""


def _is_ours(obj: object) -> bool:
    """This package's own frames (and the cells of its closures) never count as holders."""
    if isinstance(obj, types.FrameType):
        return is_search_frame(obj)
    return False
