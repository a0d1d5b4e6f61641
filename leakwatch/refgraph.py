"""Referrer graphs: who holds a leaked object, as the shortest named path from a root.

For a type, a few of its live instances are chosen, spread over the gc list (a leak's
instances are most of its type's, so most samples land on them), and a breadth-first search
walks back from them towards roots. Each step asks the
collector for the referrers of the whole frontier at once (`gc.get_referrers(*frontier)`, one
C-level heap walk per level of the path, however many objects the level holds), so a graph
costs a handful of heap walks, never one per object examined as a step-by-step search does.

Roots: modules, classes, the frames of running threads, running asyncio tasks, and objects no
gc-tracked object refers to ("held outside Python": a C extension, or a leaked reference count).
Every edge is named (attribute, dict key, list index, closure cell, frame local) from what the
objects themselves hold, without calling their methods.

Nothing here calls `repr()` or `str()` on an application object. Dict keys appear only when they
are short plain `str` or `int` that do not look like secrets; everything else shows as its type.
Paths that share a shape share a signature (a stable hash), so the same leak has the same id in
every worker and after a restart.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import re
import reprlib
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
import types
from collections import deque
from collections.abc import Iterable, Mapping
from itertools import compress
from typing import Any

from leakwatch.errors import LeakwatchError, MissingTool
from leakwatch.model import Suspect
from leakwatch.probes.census import live_objects, type_key
from leakwatch.probes.sites import object_traceback, site_key

DEFAULT_SAMPLES = 8
DEFAULT_MAX_DEPTH = 24
DEFAULT_BUDGET_SECONDS = 10.0
# Objects a search may hold on its trees before it stops (bounds its memory on a huge fan-in).
MAX_KEPT = 200_000
# Dict keys shown verbatim: plain str that reads like a name, or a small int.
SHOWN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-:/]{0,31}$")
MAX_SHOWN_INT = 10**6
CONTAINER_TYPES = (dict, list, set, frozenset, tuple, deque)
FIXED_SIZE = frozenset({"tuple", "frozenset"})  # containers that cannot be where a leak piles up
# Among roots at the same distance, the one that names the code best wins.
ROOT_PRIORITY = {"module": 0, "class": 1, "task": 2, "thread": 3, "outside": 4}
SUSPECT_ID = re.compile(r"^[0-9a-f]{12}$")
TYPE_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_<>][\w<>]*)*$")
MAX_TYPE_NAME = 300
# A site as site suspects name it: `path:LINE`, then its callers, joined by " <- ".
SITE = re.compile(r"^[^\x00-\x1f]+?:\d+( <- [^\x00-\x1f]+?:\d+)*$")
MAX_SITE = 4096
ALLOWED_TARGETS = "give a suspect id, a type name such as 'app.models.Session', or a site such as 'app/views.py:42'"
# A graph of tuples must hold tuples, which walks otherwise leave out (see live_objects).
TUPLE_KEYS = frozenset({"tuple"})
# Objects a graph keeps to sample from, and how many gc objects' referents one step reads.
MAX_MATCHES = 100_000
REFERENT_CHUNK = 4096
# Containers the collector untracks when all they hold is untracked (see `_Instances._open`).
HIDING_TYPES = frozenset({tuple, dict})


@dataclasses.dataclass(frozen=True)
class Step:
    """One object on a path: its type, and its size when it is a builtin container."""

    type: str
    size: int | None = None
    repr: str | None = None  # only when reprs were asked for: scrubbed and truncated


@dataclasses.dataclass(frozen=True)
class Path:
    """The shortest chain that holds sampled instances, from a root to the instance.

    `steps[0]` is the root object, `steps[-1]` the instance; `edges[i]` names how `steps[i]`
    holds `steps[i + 1]`. `root` says what kind of root it is ("module", "class", "thread",
    "task" or "outside", held outside Python). `accumulation` indexes the container nearest the
    instance (where leaked instances pile up), or is None. `count` is how many sampled instances
    share the path's signature.
    """

    root: str
    root_name: str
    steps: tuple[Step, ...]
    edges: tuple[str, ...]
    accumulation: int | None
    count: int = 1

    @property
    def signature(self) -> str:
        """A stable id of the path's shape: the same leak gets it in any process."""
        shape = [self.root, self.root_name, *(s.type for s in self.steps), *(_shape_of(e) for e in self.edges)]
        return hashlib.sha1("\0".join(shape).encode("utf-8", "surrogatepass")).hexdigest()[:12]

    def describe(self) -> str:
        parts = [f"{self.root} {self.root_name}" if self.root_name else self.root]
        for i, edge in enumerate(self.edges):
            step = self.steps[i + 1]
            size = f" (len {step.size})" if step.size is not None else ""
            mark = " <- accumulates here" if i + 1 == self.accumulation else ""
            parts.append(f"{edge} -> {step.type}{size}{mark}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "root": self.root,
            "root_name": self.root_name,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "edges": list(self.edges),
            "accumulation": self.accumulation,
            "count": self.count,
            "text": self.describe(),
        }


@dataclasses.dataclass(frozen=True)
class Graph:
    """The retention paths found for one type or site."""

    target: str
    instances: int
    sampled: int
    paths: tuple[Path, ...]
    passes: int
    seconds: float
    complete: bool  # False when the depth or time budget cut the search short
    released: int = 0  # samples the application let go of while the search ran
    kind: str = "type"  # what `target` names: "type" or "site"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "instances": self.instances,
            "sampled": self.sampled,
            "paths": [p.to_dict() for p in self.paths],
            "passes": self.passes,
            "seconds": self.seconds,
            "complete": self.complete,
            "released": self.released,
        }


def _shape_of(edge: str) -> str:
    """An edge with its variable part (which key, which index) left out."""
    if edge.startswith("["):
        return "[]"
    return edge


@dataclasses.dataclass(frozen=True)
class Target:
    """What a graph follows: live instances of a type (`kind="type"`, key `module.QualName`,
    builtins bare) or the live objects allocated at a source line (`kind="site"`, key
    `path/file.py:LINE` as site suspects name it; needs tracemalloc tracing)."""

    kind: str
    key: str


def resolve_target(target: Suspect | str, suspects: Iterable[Suspect]) -> Target:
    """The `Target` a graph request names: a type or site `Suspect`, the id of one of `suspects`,
    a type name or a site. Raises `LeakwatchError` saying what is wrong otherwise."""
    if isinstance(target, str):
        if not target.strip():
            raise LeakwatchError(f"a graph target is empty; {ALLOWED_TARGETS}")
        suspect = next((s for s in suspects if s.id == target), None)
        if suspect is None:
            if SUSPECT_ID.match(target):
                known = ", ".join(s.id for s in suspects) or "none"
                raise LeakwatchError(f"no current suspect has id {target!r}; current: {known}")
            if len(target) <= MAX_TYPE_NAME and TYPE_NAME.match(target):
                return Target("type", target)
            if len(target) <= MAX_SITE and SITE.match(target):
                return Target("site", target)
            raise LeakwatchError(f"{target[:80]!r} names no graph target; {ALLOWED_TARGETS}")
    elif isinstance(target, Suspect):
        suspect = target
    else:
        raise LeakwatchError(f"a graph target is a Suspect, a suspect id, a type name or a site, not {type(target).__name__}")
    if suspect.kind not in ("type", "site"):
        raise LeakwatchError(
            f"suspect {suspect.id} is {suspect.kind} memory ({suspect.key[:80]}), which no Python object holds "
            "(a C allocation, or memory the allocator keeps); graphs follow objects: give a type or site suspect"
        )
    return Target(suspect.kind, suspect.key)


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
    found = _Instances(kind, key, started + budget_seconds / 2)
    chosen = spread(found.matches, samples)
    via = {id(obj): found.via[id(obj)] for obj in chosen if id(obj) in found.via}
    found.matches = []
    found.via = {}
    ours.update((id(chosen), id(via)))
    search = _Search(chosen, ours, max_depth, deadline, reprs, via)
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


class _Instances:
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
            chunk = _without_modules(objs[i : i + REFERENT_CHUNK])
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


def _referents(obj: object) -> list[object]:
    """`gc.get_referents(obj)`, except that a module gives only its `__dict__`.

    CPython 3.12 before 3.12.6 (and 3.13's betas) visit `_asyncio`'s free list of FutureIter
    objects when traversing that module, so `gc.get_referents` hands out freed objects, and
    dropping them frees them again: the gc list is corrupted and the next heap walk spins
    forever (https://github.com/python/cpython/issues/122695). A module holds everything
    Python-visible through its `__dict__`, which the collector tracks on its own.
    """
    if isinstance(obj, types.ModuleType):
        namespace = _instance_dict(obj)
        return [namespace] if namespace is not None else []
    return gc.get_referents(obj)


def _without_modules(objs: list[object]) -> list[object]:
    """`objs` without modules, whose referents are not safe to take (see `_referents`)."""
    modules = {tp for tp in set(map(type, objs)) if issubclass(tp, types.ModuleType)}
    return [obj for obj in objs if type(obj) not in modules] if modules else objs


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


class _Search:
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
        # id(target) -> ids of objects never taken as its holders (see `stranded_tasks`).
        self.excluded: dict[int, set[int]] = {}
        self.unheld: dict[int, tuple[str, str, int]] = {}  # target -> the nearest object nothing holds
        self.found: dict[int, tuple[str, str, int]] = {}
        self.ours = ours
        self.max_depth = max_depth
        self.deadline = deadline
        self.passes = 0
        self.complete = True
        self.roots = _ThreadRoots()
        self.released = 0  # samples the application let go of while the search ran
        self.baseline_id = 0

    def run(self) -> list[Path]:
        # No comprehension or generator in here may name an object searched: the compiler would
        # keep it in a cell, and that cell would show up as one of its referrers.
        roots = _thread_roots()
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
                parents[id(t)][id(container)] = (id(t), _named(container, t))
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
                    root = _root_of(keep[oid], roots)
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
        for tid, nearest in self.unheld.items():
            found.setdefault(tid, nearest)
        paths = []
        for tid, (kind, name, start) in found.items():
            if kind == "released":
                self.released += 1
                continue
            path = self._path(tid, kind, name, start, parents[tid], keep)
            paths.append(_from_frame(path, start, roots) if kind == "thread" else path)
        return paths

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
            for child in _referents(ref):
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
                            edges[(rid, cid)] = _named(ref, child)
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
        steps, named = _collapse(chain, edges, self.reprs)
        accumulation = None
        for i in range(len(steps) - 2, 0, -1):
            if steps[i].size is not None and steps[i].type not in FIXED_SIZE:
                accumulation = i
                break
        return Path(root=kind, root_name=name, steps=steps, edges=tuple(named), accumulation=accumulation)


_GLOBALS = globals()


class _Baseline:
    """A private object the search holds the way it holds what it walks (see `_Search._released`)."""


def _is_ours(obj: object) -> bool:
    """This module's own frames (and the cells of its closures) never count as holders."""
    if isinstance(obj, types.FrameType):
        return obj.f_globals is _GLOBALS
    return False


@dataclasses.dataclass
class _ThreadRoots:
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


def _thread_roots() -> _ThreadRoots:
    """Frames of every running thread, except this search's own."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    roots = _ThreadRoots()
    for ident, frame in sys._current_frames().items():
        while frame is not None and frame.f_globals is _GLOBALS:
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


def _from_frame(path: Path, start: int, roots: _ThreadRoots) -> Path:
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


def _root_of(obj: object, threads: _ThreadRoots) -> tuple[str, str] | None:
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


FUTURE_FIELDS = ("_fut_waiter", "_callbacks", "_result", "_exception", "_loop")


def _is_future(obj: object) -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(obj, asyncio.Future)


def _is_task(obj: object) -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(obj, asyncio.Task)


def _named(parent: object, child: object) -> str:
    """`edge_name`, or "?" when an odd object defeats it: one edge never costs the graph."""
    try:
        return edge_name(parent, child)
    except Exception:
        return "?"


def edge_name(parent: object, child: object) -> str:
    """How `parent` holds `child`, from the structures themselves; no user code is called.

    The application keeps running while a graph is drawn, so containers are read through a
    copy taken in one C call (the GIL is not released inside it), never iterated in place.
    """
    if isinstance(parent, dict):
        for key, value in dict.copy(parent).items():
            if value is child:
                return f"[{safe_key(key)}]"
            if key is child:
                return "(a key)"
        return "?"
    if isinstance(parent, (list, tuple, deque)):
        for i, value in enumerate(list.copy(parent) if isinstance(parent, list) else tuple(parent)):
            if value is child:
                return f"[{i}]"
        return "?"
    if isinstance(parent, (set, frozenset)):
        return "{member}"
    if isinstance(parent, types.FrameType):
        return _frame_local(parent, child)
    if isinstance(parent, types.CellType):
        return "cell_contents"
    if isinstance(parent, types.FunctionType):
        if parent.__closure__ is child:
            return "__closure__"
        if parent.__globals__ is child:
            return "__globals__"
        if parent.__defaults__ is child:
            return "__defaults__"
        if parent.__kwdefaults__ is child:
            return "__kwdefaults__"
        return "?"
    if isinstance(parent, types.MethodType):
        return "__self__" if parent.__self__ is child else "__func__"
    if isinstance(parent, (types.GeneratorType, types.CoroutineType)):
        frame = getattr(parent, "gi_frame", None) or getattr(parent, "cr_frame", None)
        return _frame_local(frame, child) if frame is not None else "?"
    if _is_future(parent):
        # asyncio's C futures and tasks keep their state in slots no __dict__ shows.
        for name in FUTURE_FIELDS:
            if getattr(parent, name, None) is child:
                return f".{name}"
        if getattr(parent, "get_coro", None) is not None and parent.get_coro() is child:  # type: ignore[attr-defined]
            return "._coro"
        return "?"
    if isinstance(parent, type):
        # A class's own dict is reachable only through a fresh mappingproxy: match it by content.
        own = parent.__dict__
        if isinstance(child, dict) and len(child) == len(own) and all(k in child for k in own):
            return "__dict__"
        return "?"
    namespace = _instance_dict(parent)
    if namespace is child:
        return "__dict__"
    # Since 3.11 an instance may keep its attributes inline, without a dict the collector sees.
    attribute = _attribute(namespace, child)
    if attribute is not None:
        return f".{attribute}"
    for name in _slot_names(type(parent)):
        descriptor = type(parent).__dict__.get(name) if name in type(parent).__dict__ else None
        if isinstance(descriptor, types.MemberDescriptorType):
            try:
                if descriptor.__get__(parent, type(parent)) is child:
                    return f".{name}"
            except AttributeError:
                continue
    return "?"


def _instance_dict(obj: object) -> object:
    """An instance's or module's `__dict__`, read without running a `__getattr__`."""
    try:
        return object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None


def _slot_names(cls: type) -> Iterable[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots if isinstance(slots, (tuple, list)) else ():
            if isinstance(name, str):
                yield name


def _frame_local(frame: types.FrameType, child: object) -> str:
    code = frame.f_code
    for name, value in dict(frame.f_locals).items():
        if value is child:
            return f"local {name} in {code.co_name}"
    return f"frame of {code.co_name}"


def safe_key(key: object) -> str:
    """A dict key as shown: short plain names and small ints verbatim, anything else as its type."""
    if type(key) is str:
        if SHOWN_KEY.match(key) and not _looks_random(key):
            return repr(key)
        return f"<str len {len(key)}>"
    if type(key) is int:
        return str(key) if abs(key) < MAX_SHOWN_INT else "<int>"
    return f"<{type_key(type(key))}>"


def scrubbed_repr(obj: object) -> str:
    """`repr(obj)` for people, when they opt in: containers shown a few items deep, secrets
    (long random-looking runs, values after names like password= or token:, e-mail addresses,
    bearer tokens) replaced by <redacted>, at most `MAX_REPR` characters. It runs the object's
    `__repr__`, application code: never called unless reprs are asked for."""
    try:
        text = _REPR.repr(obj)
    except Exception as e:  # an application __repr__ that fails
        return f"<repr failed: {type(e).__name__}>"
    for pattern, replacement in SCRUB:
        text = pattern.sub(replacement, text)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


MAX_REPR = 120
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 120, 40
SCRUB = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    (
        re.compile(
            r"(?i)((?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|auth\w*|session\w*|cookie|credential\w*|"
            r"private[_-]?key|signature)['\"]?\s*[=:]\s*['\"]?)[^\s'\",;&}]+"
        ),
        r"\1<redacted>",
    ),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    (re.compile(r"[A-Za-z0-9_+/=-]{12,}"), lambda m: "<redacted>" if _looks_random(m.group()) else m.group()),
)


def _looks_random(text: str) -> bool:
    """Long runs of mixed letters and digits (tokens, ids, hashes) are not shown."""
    return len(text) >= 12 and any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


def _collapse(chain: list[object], edges: list[str], reprs: bool = False) -> tuple[tuple[Step, ...], list[str]]:
    """Name each step by its type (and, when `reprs`, its scrubbed repr), and merge
    `obj -> __dict__ -> ['name']` into `obj -> .name`."""
    steps: list[Step] = []
    out: list[str] = []
    i = 0
    while i < len(chain):
        steps.append(Step(type_key(type(chain[i])), _size(chain[i]), scrubbed_repr(chain[i]) if reprs else None))
        if i < len(edges):
            name = _attribute(chain[i + 1], chain[i + 2]) if edges[i] == "__dict__" and i + 2 < len(chain) else None
            if name is not None:
                # Attribute names come from code, not data: shown whatever they look like.
                out.append("." + name)
                i += 2
                continue
            cell = _closure_cell(chain, edges, i)
            if cell is not None:
                out.append(f"closure {cell}")
                i += 3
                continue
            out.append(edges[i])
        i += 1
    return tuple(steps), out


def _closure_cell(chain: list[object], edges: list[str], i: int) -> str | None:
    """`function -> __closure__ -> [k] -> cell -> cell_contents` reads as the free variable's name."""
    fn = chain[i]
    if not (isinstance(fn, types.FunctionType) and edges[i] == "__closure__" and i + 3 < len(chain)):
        return None
    if not (edges[i + 1].startswith("[") and edges[i + 2] == "cell_contents"):
        return None
    k = int(edges[i + 1][1:-1])
    names = fn.__code__.co_freevars
    return names[k] if k < len(names) else None


def _attribute(namespace: object, value: object) -> str | None:
    """The name under which a `__dict__` holds `value`, if it is an identifier."""
    if not isinstance(namespace, dict):
        return None
    for key, held in dict.copy(namespace).items():
        if held is value and type(key) is str and key.isidentifier() and len(key) <= 64:
            return key
    return None


def _size(obj: object) -> int | None:
    if type(obj) in CONTAINER_TYPES or isinstance(obj, (dict, deque)) and type(obj).__len__ in (dict.__len__, deque.__len__):
        try:
            return len(obj)  # type: ignore[arg-type]
        except TypeError:
            return None
    return None


# --- asyncio tasks nothing can wake ------------------------------------------------------------

STRANDED_SAMPLES = 8
STRANDED_DEPTH = 16
# How long to wait for a loop to finish a wake-up in progress before the second search.
STRANDED_RECHECK_WAIT = 1.0


def stranded_tasks(samples: int = STRANDED_SAMPLES, budget_seconds: float = 2.0) -> tuple[int, int]:
    """(stranded, sampled): of up to `samples` pending asyncio tasks, each waiting on a future,
    how many wait on one that nothing outside the task itself can reach.

    A task waits on its `_fut_waiter`; whatever will wake it (a timer handle in the loop, a
    waiter list of a lock or queue, a dict of pending replies, another task's callback) holds
    that future. The search walks back from the futures, as a graph does, never through the
    task's own objects (the task, its chain of coroutines and their frames): a future it finds
    no root for, Python-visible, can never be set, and its task stays pending until cancelled.
    Tasks kept in a set "so they are not collected" that wait on such a future are a leak.

    The loop runs while the search does, and a wake-up in progress holds the future for a moment
    where only a C local sees it (the loop has popped the timer handle and not yet run it). So a
    task is stranded only if a second search, once its loop has finished whatever it was doing,
    finds it stranded too and it still waits on the same future; a task woken meanwhile, or whose
    future is cancelled (as asyncio.run cancels every task at exit), is left out of the sample.
    Costs one walk of the gc list plus one per level of the search, shared by all samples; the
    second search (on at most half the budget) runs only when the first finds something
    stranded.
    """
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return 0, 0
    started = time.perf_counter()
    objs = live_objects()
    task_types = {tp for tp in set(map(type, objs)) if issubclass(tp, asyncio.Task)}
    tasks = list(compress(objs, map(task_types.__contains__, map(type, objs)))) if task_types else []
    del objs
    waiting = [t for t in tasks if not t.done() and getattr(t, "_fut_waiter", None) is not None]  # type: ignore[attr-defined]
    del tasks
    # Each waiter is read once: a task the loop wakes meanwhile has None there, and None as
    # a target would make every object a holder. A future cancelled (as asyncio.run cancels
    # every task at exit) is held by the loop only to wake its task: that says nothing.
    pairs = [
        (t, w)
        for t, w in ((t, getattr(t, "_fut_waiter", None)) for t in spread(waiting, samples))
        if w is not None and not _cancelling(w)
    ]
    del waiting
    chosen_tasks = [t for t, _ in pairs]
    futures = [w for _, w in pairs]
    del pairs
    try:
        kinds = _wait_kinds(chosen_tasks, futures, started + budget_seconds)
        for i, future in enumerate(futures):
            if _cancelling(future):  # cancelled during the search (asyncio.run's exit): no verdict
                kinds[i] = "released"
        future = None
        if "outside" in kinds:
            again = [i for i, kind in enumerate(kinds) if kind == "outside"]
            _let_loops_run({id(loop): loop for loop in (_loop_of(chosen_tasks[i]) for i in again) if loop is not None})
            for i in again:
                kinds[i] = "released"  # woken, unless the second search finds it stranded again
            again = [i for i in again if _waits_on(chosen_tasks[i], futures[i])]
            # Only the lists `_wait_kinds` is given may hold the futures it searches.
            chosen_tasks = [chosen_tasks[i] for i in again]
            futures = [futures[i] for i in again]
            second = _wait_kinds(chosen_tasks, futures, time.perf_counter() + budget_seconds / 2)
            for i, task, future, kind in zip(again, chosen_tasks, futures, second, strict=True):
                kinds[i] = kind if _waits_on(task, future) else "released"
    finally:
        futures = []
        chosen_tasks = []
    judged = [kind for kind in kinds if kind not in ("released", None)]
    return judged.count("outside"), len(judged)


def _loop_of(task: object) -> Any:
    try:
        return task.get_loop()  # type: ignore[attr-defined]
    except Exception:
        return None


def _let_loops_run(loops: dict[int, Any]) -> None:
    """Return once each loop has run two rounds of callbacks (or after STRANDED_RECHECK_WAIT):
    a timer the loop has popped runs in the round it is popped, and the task it wakes in the
    next. A loop that is not running, or runs on this thread, is not waited for."""
    asyncio = sys.modules["asyncio"]
    deadline = time.monotonic() + STRANDED_RECHECK_WAIT
    for loop in loops.values():
        if loop is asyncio._get_running_loop() or not loop.is_running():
            continue
        for _ in range(2):
            turned = threading.Event()
            try:
                loop.call_soon_threadsafe(turned.set)
            except RuntimeError:  # closed meanwhile
                break
            if not turned.wait(max(0.0, deadline - time.monotonic())):
                return


def _cancelling(future: object) -> bool:
    try:
        return bool(future.cancelled())  # type: ignore[attr-defined]
    except Exception:  # a future-like object of another library's loop, without the Future API
        return False


def _waits_on(task: object, future: object) -> bool:
    """The task is still pending on that future, not being cancelled: the loop has not woken
    it since it was read."""
    return not task.done() and getattr(task, "_fut_waiter", None) is future and not _cancelling(future)  # type: ignore[attr-defined]


def _wait_kinds(chosen_tasks: list[object], futures: list[object], deadline: float) -> list[str | None]:
    """For each task, the kind of root that holds the future it waits on ("outside": none that
    Python can see; "released": the application dropped it; None: the search ran out of time
    or depth first). Only the two lists may hold the futures besides the application."""
    ours: set[int] = {id(futures), id(chosen_tasks)}
    search = _Search(futures, ours, STRANDED_DEPTH, deadline)
    for task, future in zip(chosen_tasks, futures, strict=True):
        search.excluded[id(future)] = _owned_by(task)
    try:
        search.run()
        found = search.found
        return [found[id(future)][0] if id(future) in found else None for future in futures]
    finally:
        search.targets = []


def _owned_by(task: object) -> set[int]:
    """Ids of a task and of what only it runs: its coroutines down the await chain, their
    frames, and the iterator of the future it awaits."""
    owned = {id(task)}
    step = task.get_coro()  # type: ignore[attr-defined]
    for _ in range(64):
        if step is None:
            break
        owned.add(id(step))
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None) or getattr(step, "ag_frame", None)
        if frame is not None:
            owned.add(id(frame))
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None) or getattr(step, "ag_await", None)
    return owned


# --- rendering ---------------------------------------------------------------------------------

DOT_ROOT_COLOURS = {"module": "#dbeafe", "class": "#e0e7ff", "thread": "#fef3c7", "task": "#fef3c7", "outside": "#fee2e2"}


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: one chain of boxes per path signature, edges labelled, the accumulation
    point outlined in red. Labels hold only type names, sizes and edge names (already redacted)."""
    lines = [
        "digraph leakwatch {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f8fafc", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
        f"  label={_dot_label(f'{graph.target}: {graph.instances} live, {graph.sampled} sampled')}; labelloc=t;",
    ]
    for p_index, path in enumerate(graph.paths):
        prefix = f"p{p_index}_"
        for s_index, step in enumerate(path.steps):
            text = [step.type] + ([f"len {step.size}"] if step.size is not None else [])
            attrs = []
            if s_index == 0:
                text.insert(0, f"{path.root}: {path.root_name}" if path.root_name else path.root)
                attrs.append(f'fillcolor="{DOT_ROOT_COLOURS.get(path.root, "#f8fafc")}"')
            if s_index == path.accumulation:
                attrs.append('color="#dc2626", penwidth=2')
            if s_index == len(path.steps) - 1:
                text.append(f"x{path.count}, signature {path.signature}")
            lines.append(f"  {prefix}{s_index} [label={_dot_label(*text)}{''.join(', ' + a for a in attrs)}];")
        for e_index, edge in enumerate(path.edges):
            lines.append(f"  {prefix}{e_index} -> {prefix}{e_index + 1} [label={_dot_label(edge)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_label(*lines: str) -> str:
    """A quoted DOT string: each line escaped, joined by DOT's line break."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'


FORMATS = ("json", "dot", "svg")
SVG_TIMEOUT_SECONDS = 30.0


def check_format(format: str) -> None:  # noqa: A002 - the public word
    """Raise `LeakwatchError` unless `format` is one `render` draws."""
    if format not in FORMATS:
        raise LeakwatchError(f"format {format!r}: allowed: {', '.join(FORMATS)}")


def render(graph: Graph, format: str) -> dict[str, Any] | str | bytes:  # noqa: A002 - the public word
    """The graph as a JSON-ready dict ("json"), DOT text ("dot") or SVG bytes ("svg")."""
    check_format(format)
    if format == "json":
        return graph.to_dict()
    if format == "dot":
        return to_dot(graph)
    return to_svg(to_dot(graph))


def to_svg(dot_text: str, timeout: float = SVG_TIMEOUT_SECONDS) -> bytes:
    """SVG from Graphviz's `dot`; `MissingTool` (naming the Debian package) when it is not installed."""
    program = shutil.which("dot")
    if program is None:
        raise MissingTool("dot", "graphviz", "to draw SVG graphs (format='dot' needs nothing)")
    result = subprocess.run([program, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise LeakwatchError(f"dot failed: {result.stderr.decode(errors='replace')[:500]}")
    return result.stdout
