"""One process's pipeline, run once a tick: probes -> sampler -> history -> detector -> `Report`,
steered by the cost governor (the pace) and the trace scheduler (tracing windows).

It owns the state a verdict rests on (history, the verdict carried between ticks, the costs)
and nothing about threads, files or HTTP: the watcher runs it under its tick lock, and a forked
child builds a new one, since a new process has its own warm-up, history and verdict.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from leakwatch import detector
from leakwatch.config import Config
from leakwatch.costs import CostMeter
from leakwatch.errors import LeakwatchError
from leakwatch.exporters.log import log_changes
from leakwatch.governor import Governor
from leakwatch.history import History
from leakwatch.model import SITE_SEPARATOR, Report, Retained, SeriesKey, Suspect
from leakwatch.probes.process import run_and_wait_seconds
from leakwatch.probes.sites import is_library_file
from leakwatch.sampler import Sampler
from leakwatch.tracing import TraceScheduler

if TYPE_CHECKING:  # imported when asyncio tasks grow: it walks the heap
    from leakwatch.refgraph.tasks import TaskCheck

logger = logging.getLogger("leakwatch")


@dataclasses.dataclass(frozen=True)
class _Sized:
    """One type suspect's last retained-size measure, per object, so the estimate follows its
    count between measures."""

    per_unit: float
    shared: float
    error_per_unit: float
    samples: int
    seconds: float
    at: float  # sample-clock time of the measure


# Points of each suspect's chart on the report (and the HTML page).
TREND_POINTS = 32
# Census kinds whose largest entries each report carries (Config.top_k of them).
TOP_KINDS = ("type", "site")
# Longest one retained-size measure may take (graph_budget, when lower, bounds it too).
RETAINED_BUDGET_SECONDS = 1.0
# Deep windows spent looking for the application's line that calls a library's allocating line.
CALLER_WINDOWS = 3
# Suspect kinds whose objects are sized: a type's instances. (A site's objects are known only
# while tracing, by the traceback of what the open window allocated, which is not the
# population its series counts.)
SIZED_KINDS = ("type",)
# Share of cpu_budget retained-size measures may use: after a measure that took S seconds of
# CPU, the next waits S / (RETAINED_SHARE * budget). Not counted in the pace: a measure never
# spaces the samples out.
RETAINED_SHARE = 0.25
# Type keys of asyncio's tasks (the C one, and the pure-Python one where _asyncio is missing).
TASK_TYPES = frozenset({"_asyncio.Task", "asyncio.tasks.Task"})


class Pipeline:
    """Sample, record, decide and report, one tick at a time; not thread-safe.

    `sampler` is the watcher's (its probes outlive a fork: a tracing window open at fork is
    closed by the child's scheduler); `slowdown` is tracing's cost as measured before, if ever.
    """

    def __init__(self, config: Config, clock: Callable[[], float], epoch: float, sampler: Sampler, slowdown: float = 0.0) -> None:
        self.config = config
        self._clock = clock
        self._epoch = epoch  # wall-clock time of the clock's zero
        self.sampler = sampler
        sampler.forget()
        self.history = History(max_series=config.max_series, points=config.history_points)
        self.verdict = detector.Verdict()
        self.params = detector.Params(
            window=config.window,
            warmup=config.warmup,
            significance=config.significance,
            min_growth_objects=config.min_growth_objects,
            min_growth_bytes=config.min_growth_bytes,
            trace_window=config.trace_window,
            can_trace=config.tracemalloc != "off",
            epoch=epoch,
        )
        self.governor = Governor(config, clock())
        self.governor.slowdown = slowdown
        self.tracing = TraceScheduler(config, sampler.sites, self.governor, self.history)
        self.report = Report(tracing=self.tracing.state)
        # Sites of growing types not yet suspects, and when each was last a candidate.
        self._type_sites: dict[str, tuple[tuple[str, ...], float]] = {}
        self._costs = CostMeter()
        self._objects = 0  # counted by the latest census
        self._unbilled_cpu = 0.0  # CPU spent for the last tick after it was counted
        self._task_check: TaskCheck | None = None  # while asyncio tasks grow
        self._sized: dict[SeriesKey, _Sized] = {}  # retained-size measures of current suspects
        self._caller_windows: dict[str, int] = {}  # library line -> deep windows that missed its caller
        self._sizing_cpu = 0.0  # CPU the last tick's retained-size measure took
        self._next_sizing_at = 0.0  # when the next may run (see RETAINED_SHARE)
        self._deep_window = 0  # the last deep window counted there
        self._sizing_errors = 0

    def bill(self, cpu_seconds: float) -> None:
        """CPU spent for the last tick after its report was made (writing it to a file): counted
        with the next tick, so the budget sees it."""
        self._unbilled_cpu += cpu_seconds

    def run(self, threaded: bool, tick_errors: int = 0) -> Report:
        """One tick; `threaded` says the watcher's thread runs it (see `TraceScheduler.steer`),
        `tick_errors` counts the ticks that failed so far (reported as the "watcher" error)."""
        cpu = time.thread_time()
        self._sizing_cpu = 0.0
        report = self._decide(threaded, tick_errors)
        cpu = time.thread_time() - cpu + self._unbilled_cpu
        self._unbilled_cpu = 0.0
        self._costs.add(report.durations, cpu)
        governor = self.governor
        governor.observe_contention(run_and_wait_seconds())
        if governor.after_tick(cpu - self._sizing_cpu, self._objects):
            self.params = dataclasses.replace(
                self.params,
                window=governor.window,
                min_growth_objects=self.config.min_growth_objects * governor.growth_scale,
                min_growth_bytes=self.config.min_growth_bytes * governor.growth_scale,
            )
        now = self._clock()
        governor.observe_process(now, time.process_time())
        self.report = dataclasses.replace(report, costs=self._costs.snapshot(self.sampler.runs), budget=governor.snapshot(now))
        return self.report

    def _decide(self, threaded: bool, tick_errors: int) -> Report:
        prior = self.verdict
        attribute = [k.key for k in self._unexplained(prior) if k.kind == "type"]
        sample = self.sampler.sample(attribute, self.history.own_objects())
        self._objects = int(sum(sample.values.get("type", {}).values()))
        self.history.add(sample, prior.protected())
        started = time.perf_counter()
        sites = self.sampler.sites
        tracing = sites is not None and sites.active and sample.site_window != 0
        # Sites found for a type while it was only a candidate (a short window may have closed
        # since) are kept until it is confirmed or dropped.
        known = {**self._type_sites, **{k: (v, sample.t) for k, v in sample.type_sites.items()}}
        verdict = detector.detect(self.history, prior, self.params, {k: v for k, (v, _) in known.items()}, tracing)
        # A candidate may drop out for a tick or two and come back: its sites are kept for a window.
        self._type_sites = {
            k: (v, sample.t if SeriesKey("type", k) in verdict.pending else seen)
            for k, (v, seen) in known.items()
            if SeriesKey("type", k) in verdict.pending or sample.t - seen < self.params.window
        }
        detect_seconds = time.perf_counter() - started
        self.verdict = verdict
        suspects = self._with_callers(self._with_task_verdict(verdict.suspects, sample.t), sample.site_window)
        suspects, sizing_seconds = self._with_retained(suspects, sample.t)
        self.tracing.steer(self._unexplained(verdict), verdict, self.params.window, sample.t, threaded)
        if self.config.log_suspects:
            log_changes(prior.suspects, suspects)
        history = self.history
        named = {s.series for s in verdict.suspects}  # pending holds suspects too: not candidates
        errors = {**self.sampler.errors, **({"retained": self._sizing_errors} if self._sizing_errors else {})}
        return Report(
            time=sample.t + self._epoch,
            samples=self.sampler.samples,
            suspects=suspects,
            candidates=tuple(k for k in verdict.pending if k not in named),
            tracing=self.tracing.state,
            errors={**errors, **({"watcher": tick_errors} if tick_errors else {})},
            durations={
                **sample.durations,
                "detect": detect_seconds,
                **({"retained": sizing_seconds} if sizing_seconds is not None else {}),
            },
            series=history.series_count(),
            history_bytes=history.nbytes(),
            top={kind: _largest(sample.values.get(kind, {}), self.config.top_k) for kind in TOP_KINDS},
            types=len(sample.values.get("type", ())),
            process=detector.process_values(history, sample, self.params.window),
            memory_limit=sample.memory_limit,
            costs=self.report.costs,
            trends=detector.trends(history, verdict.suspects[: self.config.max_suspect_series], TREND_POINTS, self._epoch),
            watched=sample.t - (history.start if history.start is not None else sample.t),
            verdict_after=detector.time_to_verdict(self.params, self.governor.interval),
        )

    def _unexplained(self, verdict: detector.Verdict) -> list[SeriesKey]:
        """The triggers a tracing window could still explain: growth outside any type, growing
        types whose sites are not known yet, and type suspects allocated in a library whose
        caller in the application is not known yet (a few windows at most)."""
        unexplained = [k for k in verdict.triggers if not (k.kind == "type" and k.key in self._type_sites)]
        for s in verdict.suspects:
            if s.kind == "type" and s.series not in unexplained and self._needs_caller(s):
                unexplained.append(s.series)
        return unexplained

    def _needs_caller(self, suspect: Suspect) -> bool:
        """Whether the suspect's allocating line is in a library and its caller in the
        application is still wanted: not known, and fewer than `CALLER_WINDOWS` windows tried."""
        sites = self.sampler.sites
        line = _allocating_line(suspect)
        if sites is None or not line or line in sites.user_lines:
            return False
        if self._caller_windows.get(line, 0) >= CALLER_WINDOWS:
            return False
        filename = line.partition(SITE_SEPARATOR)[0].rpartition(":")[0]
        return is_library_file(filename)

    def _with_callers(self, suspects: tuple[Suspect, ...], window: int) -> tuple[Suspect, ...]:
        """Each suspect allocated in a library with its caller in the application, once known;
        asks the site probe to trace deep enough to find it while one is wanted."""
        sites = self.sampler.sites
        if sites is None:
            return suspects
        wanted = [s for s in suspects if s.kind in ("type", "site") and self._needs_caller(s)]
        if window and window != self._deep_window and sites.deep:
            # A deep window was traced: each suspect still without its caller used one try.
            self._deep_window = window
            for s in wanted:
                line = _allocating_line(s)
                self._caller_windows[line] = self._caller_windows.get(line, 0) + 1
            wanted = [s for s in wanted if self._needs_caller(s)]
        sites.deep = bool(wanted)
        lines = sites.user_lines
        out = []
        for s in suspects:
            line = _allocating_line(s)
            caller = lines.get(line, "") if line else ""
            out.append(dataclasses.replace(s, user_line=caller) if caller else s)
        return tuple(out)

    def _with_retained(self, suspects: tuple[Suspect, ...], now: float) -> tuple[tuple[Suspect, ...], float | None]:
        """Each type suspect with the memory its objects hold (`refgraph.retained`), and the
        seconds this tick's measure took (None when none ran). One suspect is measured a tick
        at most, the fastest-growing first, when its last measure is a window old or it has
        none, and as `RETAINED_SHARE` of the CPU budget allows; between measures the estimate
        follows the suspect's count."""
        current = {s.series for s in suspects if s.kind in SIZED_KINDS}
        self._sized = {k: v for k, v in self._sized.items() if k in current}
        if not current or self.config.retained_samples == 0:
            return suspects, None
        due = [
            s
            for s in suspects
            if s.series in current and (s.series not in self._sized or now - self._sized[s.series].at >= self.params.window)
        ]
        seconds = None
        if due and now >= self._next_sizing_at:
            chosen = min(due, key=lambda s: -s.growth_per_second)
            cpu = time.thread_time()
            seconds = self._measure(chosen, now)
            self._sizing_cpu = time.thread_time() - cpu
            self._next_sizing_at = now + self._sizing_cpu / (RETAINED_SHARE * max(self.governor.budget, 1e-6))
        out = []
        for s in suspects:
            sized = self._sized.get(s.series)
            if sized is not None:
                retained = Retained(
                    bytes=sized.shared + sized.per_unit * s.current,
                    error_bytes=sized.error_per_unit * s.current,
                    samples=sized.samples,
                    seconds=sized.seconds,
                    measured_at=sized.at + self._epoch,
                )
                s = dataclasses.replace(s, retained=retained)
            out.append(s)
        return tuple(out), seconds

    def _measure(self, suspect: Suspect, now: float) -> float | None:
        """Measure one suspect's retained size; the seconds it took, or None if it could not."""
        from leakwatch.refgraph.retained import measure

        budget = min(self.config.graph_budget, RETAINED_BUDGET_SECONDS)
        try:
            sizing = measure(suspect.kind, suspect.key, self.config.retained_samples, budget)
        except LeakwatchError:
            return None  # a type that names nothing to size now
        except Exception:
            # pympler on an object it cannot size: the verdict stands without the estimate.
            self._sizing_errors += 1
            logger.debug("leakwatch: could not size %s %s", suspect.kind, suspect.key, exc_info=True)
            return None
        if sizing is None or suspect.current <= 0:
            return None
        self._sized[suspect.series] = _Sized(
            per_unit=sizing.per_object,
            shared=sizing.shared,
            error_per_unit=sizing.error_per_object,
            samples=sizing.samples,
            seconds=sizing.seconds,
            at=now,
        )
        return sizing.seconds

    def _with_task_verdict(self, suspects: tuple[Suspect, ...], now: float) -> tuple[Suspect, ...]:
        """Growing asyncio tasks, stranded or a backlog (see `refgraph.tasks.TaskCheck`)."""
        tasks = [s for s in suspects if s.kind == "type" and s.key in TASK_TYPES]
        if not tasks:
            self._task_check = None
            return suspects
        if self._task_check is None:
            from leakwatch.refgraph.tasks import TaskCheck

            self._task_check = TaskCheck(budget_seconds=min(self.config.graph_budget, 2.0))
        return self._task_check.annotate(suspects, tasks, now, self.params.window)


def _largest(values: Mapping[str, float], k: int) -> tuple[tuple[str, float], ...]:
    return tuple(heapq.nlargest(k, values.items(), key=lambda kv: kv[1])) if k else ()


def _allocating_line(suspect: Suspect) -> str:
    """A site suspect's line, or a type suspect's first allocating line ("" when unknown)."""
    if suspect.kind == "site":
        return suspect.key
    return suspect.sites[0] if suspect.kind == "type" and suspect.sites else ""
