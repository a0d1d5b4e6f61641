"""Frozen records that flow down the pipeline: `Sample` -> history -> `Suspect` -> `Report`."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from leakwatch.costs import Budget, Costs

KINDS = ("type", "site", "process")
# How a site key joins its frames (leakwatch.probes.sites.site_key), allocating frame first:
# "file.py:12 <- caller.py:40".
SITE_SEPARATOR = " <- "
PROCESS_OBJECT_KEYS = frozenset({"py_blocks"})
# The process series of its CPU time so far (seconds, all threads): how busy it is.
CPU_KEY = "cpu_seconds"


class SeriesKey(NamedTuple):
    """One series of the history: its kind ("type", "site", "site_blocks" or "process") and
    key. Written "kind:key" in reports (`str()`), read back with `parse`."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"

    @classmethod
    def parse(cls, text: str) -> SeriesKey:
        """The key `str()` wrote; `ValueError` for text without a "kind:" prefix."""
        kind, sep, key = text.partition(":")
        if not sep or not kind:
            raise ValueError(f"not a series key (kind:key): {text!r}")
        return cls(kind, key)


def unit_of(kind: str, key: str) -> str:
    """The unit a series of this kind and key is measured in: "objects" or "bytes"."""
    if kind == "type" or (kind == "process" and key in PROCESS_OBJECT_KEYS):
        return "objects"
    return "bytes"


def suspect_id(kind: str, key: str) -> str:
    """A stable id for a suspect: the same kind and key give the same id in any process."""
    return hashlib.sha1(f"{kind}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Sample:
    """What one tick's probes read.

    `t` is the watcher's clock (monotonic seconds); `values[kind][key]` is a count or byte size.
    `memory_limit` is the container's memory limit in bytes (0: none known).
    `site_window` numbers the tracing window the site values belong to (0 when not tracing):
    site values are bytes allocated since that window began and still alive.
    `type_sites` maps a type key to allocation sites of sampled live instances.
    """

    t: float
    values: Mapping[str, Mapping[str, float]]
    durations: Mapping[str, float] = dataclasses.field(default_factory=dict)
    errors: tuple[str, ...] = ()
    site_window: int = 0
    type_sites: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    memory_limit: float = 0.0


@dataclasses.dataclass(frozen=True)
class Retained:
    """The memory a suspect's objects hold, estimated from the deep sizes of a few of them
    (see `refgraph.retained`): `bytes` now, within `error_bytes` (95%), from `samples` objects
    sized at `measured_at` (wall-clock) in `seconds`."""

    bytes: float
    error_bytes: float
    samples: int
    seconds: float
    measured_at: float


@dataclasses.dataclass(frozen=True)
class Suspect:
    """One thing that is leaking, as the detector sees it.

    - `kind`: "type" (live gc-tracked objects of a class), "site" (bytes allocated at a
      source line and still alive, from tracemalloc) or "process" (`rss` growth that
      Python-visible allocations do not explain).
    - `key`: `module.QualName` (builtins bare: `dict`), `path/file.py:LINE`, or `rss`.
    - `current`: the latest value, in `unit` ("objects" or "bytes").
    - `growth_per_second`: Theil-Sen slope over the verdict's window, in `unit` per second.
    - `since`: wall-clock time (epoch seconds) when the growth began, as far as history shows.
    - `confidence`: 1 - p of the growth test's trend test (Mann-Kendall, or the steps' sign test), in [0, 1].
    - `confirmed_at`: wall-clock time the suspect was first confirmed.
    - `sites`: for a type, allocation sites of sampled live instances, when tracing caught them.
    - `detail`: one line for humans.
    - `baseline`: the value where the growth began, in `unit`.
    - `state`: "growing", or "held": it stopped growing when the process went quiet (its load
      stopped) and still holds what it leaked above `baseline`; `growth_per_second` is then 0.
    - `retained`: for a type suspect, the memory its objects hold (`Retained`), once
      measured; None before, and for a process suspect.
    - `user_line`: when the allocating line (a site suspect's key, a type suspect's first site)
      is in the standard library or an installed package, the nearest line of the
      application's own code that called into it, once a tracing window caught it; else "".
    - `id`: a stable hash of kind and key.
    """

    kind: str
    key: str
    unit: str
    current: float
    growth_per_second: float
    since: float
    confidence: float
    confirmed_at: float = 0.0
    sites: tuple[str, ...] = ()
    detail: str = ""
    baseline: float = 0.0
    state: str = "growing"
    retained: Retained | None = None
    user_line: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", suspect_id(self.kind, self.key))

    @property
    def series(self) -> SeriesKey:
        """The history series this suspect was judged on."""
        return SeriesKey(self.kind, self.key)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sites"] = list(self.sites)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Suspect:
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        kw["sites"] = tuple(kw.get("sites", ()))
        if isinstance(kw.get("retained"), Mapping):
            kw["retained"] = Retained(**kw["retained"])
        return cls(**kw)

    def describe(self) -> str:
        """One human line: what grows, how fast, how big."""
        now = human(self.current, self.unit)
        if self.state == "held":
            held = human(self.current - self.baseline, self.unit)
            line = f"{self.kind} {self.key}: no longer growing, still holds {held} more than when it began, now {now}"
        else:
            rate = human(self.growth_per_second * 60, self.unit)
            line = f"{self.kind} {self.key}: +{rate}/min, now {now} (confidence {self.confidence:.3f})"
        if self.retained is not None:
            line += f", holding about {human(self.retained.bytes, 'bytes')} (±{human(self.retained.error_bytes, 'bytes')})"
        if self.sites:
            line += " allocated at " + ", ".join(self.sites)
        if self.user_line:
            line += f", called from {self.user_line}"
        if self.detail:
            line += f" [{self.detail}]"
        return line


def leak_ids(suspects: Sequence[Suspect]) -> dict[str, str]:
    """The leak each suspect belongs to, by suspect id: a site suspect whose line is among the
    allocation sites of a type suspect belongs to that type's leak (the type's id); every other
    suspect is a leak of its own. Ids are the same in every process, so one leak in many
    workers or pods has one id everywhere."""
    by_line: dict[str, str] = {}
    for s in suspects:
        if s.kind == "type":
            for site in s.sites:
                by_line.setdefault(site.partition(SITE_SEPARATOR)[0], s.id)
    return {s.id: by_line.get(s.key.partition(SITE_SEPARATOR)[0], s.id) if s.kind == "site" else s.id for s in suspects}


def seconds(value: float) -> str:
    """Seconds for people: whole seconds from 10 s, two figures below (0.45 s)."""
    return f"{value:.0f} s" if abs(value) >= 10 else f"{value:.2g} s"


def human(value: float, unit: str) -> str:
    if unit != "bytes":
        return f"{value:,.0f} objects" if abs(value) >= 10 else f"{value:.2f} objects"
    for name, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.1f} {name}"
    return f"{value:.0f} B"


@dataclasses.dataclass(frozen=True)
class Report:
    """The watcher's latest verdict; immutable, so readers on other threads need no lock.

    `time` is the wall-clock time of the sample it rests on; `samples` counts ticks so far;
    `errors` counts failures by probe; `tracing` is "off", "idle", "window" or "external".
    `top` holds the largest census entries of that sample, largest first: "type" (live
    objects) and "site" (traced bytes, while tracing); `types` counts the distinct types seen.
    `process` is that sample's process memory ("rss", "uss", "py_blocks", and while tracing
    "traced" and "trace_overhead"); `memory_limit` the container limit in bytes (0: none).
    `costs` is what leakwatch has spent on itself, `budget` what its cost governor decided.
    `trends` holds, for each suspect id, its history in at most 32 equal-time steps:
    (wall-clock time, highest value in the step). `watched` is how many seconds the samples
    span so far, and `verdict_after` how many a steady leak needs to be named at the current
    pace (warm-up, then one window, then a tick): before that, no suspect means no verdict yet,
    not "no leak" (`summary()` says which).
    """

    time: float = 0.0
    samples: int = 0
    suspects: tuple[Suspect, ...] = ()
    candidates: tuple[SeriesKey, ...] = ()
    tracing: str = "off"
    errors: Mapping[str, int] = dataclasses.field(default_factory=dict)
    durations: Mapping[str, float] = dataclasses.field(default_factory=dict)
    series: int = 0
    history_bytes: int = 0
    top: Mapping[str, tuple[tuple[str, float], ...]] = dataclasses.field(default_factory=dict)
    types: int = 0
    process: Mapping[str, float] = dataclasses.field(default_factory=dict)
    memory_limit: float = 0.0
    costs: Costs = dataclasses.field(default_factory=Costs)
    budget: Budget = dataclasses.field(default_factory=Budget)
    trends: Mapping[str, tuple[tuple[float, float], ...]] = dataclasses.field(default_factory=dict)
    watched: float = 0.0
    verdict_after: float = 0.0
    postmortems: int = 0  # post-mortems written as memory neared its limit (see leakwatch.postmortem)
    # With the baseline_file option: when the start-up baseline was taken (wall-clock), and
    # each current type suspect's count in it.
    baseline_at: float = 0.0
    baseline: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def judged(self) -> bool:
        """Whether the samples span long enough that a steady leak would have been named."""
        return self.watched >= self.verdict_after

    def summary(self) -> str:
        """One line for people: the suspects, "no leak suspected", or "no verdict yet" and what it needs."""
        span = f"{self.samples} samples over {seconds(self.watched)}"
        if self.suspects:
            return f"{len(self.suspects)} suspected leak(s) after {span}"
        if not self.judged:
            return (
                f"no verdict yet: {span}; a verdict needs about {seconds(self.verdict_after)} "
                f"at the current interval ({self.budget.interval:g} s)"
            )
        return f"no leak suspected ({span})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "samples": self.samples,
            "suspects": [s.to_dict() for s in self.suspects],
            "candidates": [str(c) for c in self.candidates],
            "tracing": self.tracing,
            "errors": dict(self.errors),
            "durations": dict(self.durations),
            "series": self.series,
            "history_bytes": self.history_bytes,
            "top": {kind: [[key, value] for key, value in entries] for kind, entries in self.top.items()},
            "types": self.types,
            "process": dict(self.process),
            "memory_limit": self.memory_limit,
            "costs": self.costs.to_dict(),
            "budget": self.budget.to_dict(),
            "trends": {sid: [[t, v] for t, v in points] for sid, points in self.trends.items()},
            "watched": self.watched,
            "verdict_after": self.verdict_after,
            "postmortems": self.postmortems,
            "baseline_at": self.baseline_at,
            "baseline": dict(self.baseline),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        return cls(
            time=float(d.get("time", 0.0)),
            samples=int(d.get("samples", 0)),
            suspects=tuple(Suspect.from_dict(s) for s in d.get("suspects", ())),
            candidates=tuple(SeriesKey.parse(str(c)) for c in d.get("candidates", ())),
            tracing=str(d.get("tracing", "off")),
            errors=dict(d.get("errors", {})),
            durations=dict(d.get("durations", {})),
            series=int(d.get("series", 0)),
            history_bytes=int(d.get("history_bytes", 0)),
            top={kind: tuple((str(k), float(v)) for k, v in entries) for kind, entries in d.get("top", {}).items()},
            types=int(d.get("types", 0)),
            process={k: float(v) for k, v in d.get("process", {}).items()},
            memory_limit=float(d.get("memory_limit", 0.0)),
            costs=Costs.from_dict(d.get("costs", {})),
            budget=Budget.from_dict(d.get("budget", {})),
            trends={sid: tuple((float(t), float(v)) for t, v in pts) for sid, pts in d.get("trends", {}).items()},
            watched=float(d.get("watched", 0.0)),
            verdict_after=float(d.get("verdict_after", 0.0)),
            postmortems=int(d.get("postmortems", 0)),
            baseline_at=float(d.get("baseline_at", 0.0)),
            baseline={str(k): float(v) for k, v in d.get("baseline", {}).items()},
        )
