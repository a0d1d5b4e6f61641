"""What leakwatch spends on itself: duration histograms by phase and CPU seconds.

The watcher's thread adds to a `CostMeter` each tick and puts an immutable `Costs` snapshot on
each `Report`, so an exporter reads counts without touching state the thread is changing.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping
from typing import Any

# Upper bounds, in seconds, of the phase duration histogram (the last bucket is +Inf).
DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclasses.dataclass(frozen=True)
class PhaseHistogram:
    """Durations of one phase: `counts[i]` observations fell in bucket i (not cumulative;
    the last bucket is above every bound), `total` seconds in all."""

    counts: tuple[int, ...]
    total: float

    @property
    def observations(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it) pairs, ending with "+Inf", as Prometheus wants."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*(repr(b) for b in DURATION_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclasses.dataclass(frozen=True)
class Costs:
    """A snapshot of what leakwatch has spent since it started (or since fork, in a child).

    - `phases`: a duration histogram per phase ("census", "process", "sites", "detect", and
      "retained" when a retained-size measure ran).
    - `cpu_seconds`: CPU time of the threads that ran ticks, spent inside ticks.
    - `runs`: how many times each probe ran.
    """

    phases: Mapping[str, PhaseHistogram] = dataclasses.field(default_factory=dict)
    cpu_seconds: float = 0.0
    runs: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases": {k: {"counts": list(h.counts), "total": h.total} for k, h in self.phases.items()},
            "cpu_seconds": self.cpu_seconds,
            "runs": dict(self.runs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Costs:
        phases = {
            k: PhaseHistogram(tuple(int(c) for c in h["counts"]), float(h["total"])) for k, h in d.get("phases", {}).items()
        }
        return cls(
            phases=phases, cpu_seconds=float(d.get("cpu_seconds", 0.0)), runs={k: int(v) for k, v in d.get("runs", {}).items()}
        )


class CostMeter:
    """Adds up tick costs; only the thread that holds the watcher's tick lock calls `add`."""

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}
        self._totals: dict[str, float] = {}
        self._cpu = 0.0

    def add(self, durations: Mapping[str, float], cpu_seconds: float) -> None:
        for phase, seconds in durations.items():
            counts = self._counts.setdefault(phase, [0] * (len(DURATION_BUCKETS) + 1))
            counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
            self._totals[phase] = self._totals.get(phase, 0.0) + seconds
        self._cpu += max(0.0, cpu_seconds)

    def snapshot(self, runs: Mapping[str, int]) -> Costs:
        phases = {p: PhaseHistogram(tuple(c), self._totals[p]) for p, c in self._counts.items()}
        return Costs(phases=phases, cpu_seconds=self._cpu, runs=dict(runs))


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the cost governor (leakwatch.governor) has decided, as of one tick.

    - `interval`, `window`: seconds between samples and the detector's window now; longer than
      the options when a sample costs more than `cpu_budget` allows at the configured pace.
    - `cpu_spend`: the smoothed CPU time of a tick over the interval: the share of one core spent.
    - `core_share`: the share of a core the process's threads get when they want one (1 on a
      core of its own; about 0.5 beside another busy process); `cpu_budget` applies to it.
    - `trace_slowdown`: how many times slower allocation-heavy code runs while tracing (0: not
      measured yet); `busy`: the share of a core the application's threads used between windows
      (what tracing's slowdown applies to); `trace_spend`: the share of the application's time tracing windows have cost
      it since the watcher started; `trace_credit`: application-seconds tracing may still cost.
    - `windows`, `traced_seconds`: tracing windows leakwatch opened, and how long they ran in all.
    - `windows_deferred`: times a tracing window was wanted and put off until it was affordable.
    """

    interval: float = 0.0
    window: float = 0.0
    cpu_spend: float = 0.0
    core_share: float = 1.0
    trace_slowdown: float = 0.0
    busy: float = 0.0
    trace_spend: float = 0.0
    trace_credit: float = 0.0
    windows: int = 0
    traced_seconds: float = 0.0
    windows_deferred: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Budget:
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {
            k: (int(v) if k in ("windows", "windows_deferred") else float(v)) for k, v in d.items() if k in fields
        }
        return cls(**values)
