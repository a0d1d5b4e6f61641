"""The cost governor: what leakwatch may spend, and how it spaces its work to stay within that.

Two budgets, two kinds of cost:

- `cpu_budget` is the share of one core leakwatch's own thread may use. Each tick's CPU time is
  measured and smoothed; when `smoothed CPU / interval` would pass `TARGET_SHARE` of the
  budget (a census of millions of objects), the interval stretches until it fits. The
  detector needs `MIN_POINTS` samples over half a window, so once the interval passes
  `window / WINDOW_TICKS` the window stretches with it (and its least growth with it, so the
  least growth *rate* is unchanged):
  a huge heap is watched more slowly, never more expensively, up to `MAX_INTERVAL`; past it
  the spend passes the budget (logged, and the LeakwatchOverBudget alert fires). Only
  defaults move: an `interval` the user set is kept whatever it costs (one warning), and a
  `window` the user set caps the stretch at `window / WINDOW_TICKS`.
- A share of one core weighs more on a process that does not get a whole core: beside another
  busy process on the same core it gets half, and 1% of a core is 2% of its work. So the
  budget applies to the share of a core the process's threads get when they want one
  (`core_share`: the CPU time they ran over that plus the time they waited on a run queue,
  from the kernel's scheduler statistics; 1 where it does not say), down to `CORE_SHARE_FLOOR`.
- `trace_budget` is the share of the application's time tracing windows may cost it, averaged
  from the start. tracemalloc's cost falls on the application's threads, in every allocation,
  where no clock of ours sees it, so it is measured once on this thread (`slowdown`: how many
  times slower allocation-heavy code runs traced) and taken as the worst case for the CPU work
  the application does: a traced second costs `(slowdown - 1) * busy` seconds of its time,
  where `busy` is the share of a core the application's threads used between windows (at
  least `BUSY_FLOOR`; 1 until measured). A saturated loop pays in full; a service that mostly
  waits on I/O pays for the little it computes. The credit is a token bucket: it starts full,
  holding one whole window's cost, and refills at `trace_budget` per second (of the process's
  share of a core, as above); a window opens
  only when the credit pays for `SHORTEST_WINDOW` (a window that only attributes growing types
  to their lines), or for a whole `trace_window` (growth that only site series can place), and lasts
  as long as the credit (and what accrues meanwhile) pays for, at most `trace_window` (and
  exactly `trace_window` when the user set it). So tracing's cost never passes `trace_budget`
  times the time run so far, plus the one window the bucket starts with.

Pure bookkeeping: no clock (callers pass `now`), no thread, no tracemalloc calls.
"""

from __future__ import annotations

import logging

from leakwatch.config import Config
from leakwatch.costs import Budget
from leakwatch.trend import MIN_POINTS

logger = logging.getLogger(__name__)

# The window holds at least this many intervals: MIN_POINTS samples over half of it.
WINDOW_TICKS = 2 * MIN_POINTS
# The shortest tracing window worth opening (or half an interval, if less): the allocations of
# its span are what the tick that closes it attributes.
SHORTEST_WINDOW = 1.0
# Weight of the newest tick in the smoothed tick cost and in the application's busy share.
CPU_SMOOTHING = 0.25
# The least busy share tracing is charged for: an idle process still allocates a little.
BUSY_FLOOR = 0.02
# The pace aims at this share of cpu_budget (half): the rest is headroom for what a tick's
# CPU time does not show (the caches a census leaves cold, handing the GIL back and forth) and for a
# heap that grows between ticks (the pace follows a tick's smoothed cost, one tick late).
TARGET_SHARE = 0.5
# The budget shrinks with the process's share of a core no further than this.
CORE_SHARE_FLOOR = 0.25
# A share is read only over spans in which the process's threads ran or waited this long:
# an idle process's few milliseconds say nothing about its core.
CORE_SHARE_MIN_SECONDS = 0.1
# The interval stretches no further than this (or the interval option, if longer): past it a
# census costs more than the budget, and the spend shows it (LeakwatchOverBudget).
MAX_INTERVAL = 120.0
# Overspending is said only once the smoothed tick cost has this many ticks behind it (the
# first census of a process runs on cold caches).
SETTLED_TICKS = 3
# The interval moves only when the cost it needs is this far off (no jitter tick to tick).
STRETCH_UP = 1.1
STRETCH_DOWN = 1.25


class Governor:
    """Keeps one watcher's costs within its budgets; only the thread holding the tick lock calls it."""

    def __init__(self, config: Config, now: float) -> None:
        self.config = config
        self.interval = config.interval
        self.window = config.window
        self.slowdown = 0.0  # tracing's measured slowdown of allocation-heavy code; 0 until measured
        self._tick_cpu: float | None = None
        self.core_share = 1.0  # share of a core the process gets when it wants one, smoothed
        self._last_sched: tuple[float, float] | None = None  # (ran, waited) of its threads
        self._share_seen = False
        self._own_cpu = 0.0  # CPU seconds of every tick so far
        self.busy = 1.0  # share of a core the application used between windows, smoothed
        self._busy_seen = False
        self._last_process: tuple[float, float, float] | None = None  # (now, process CPU, own CPU)
        self._traced_between = False  # a window of ours was open since the last reading
        self._started = now
        self._credit = 0.0  # application-seconds tracing may still cost
        self._filled = False  # the credit is filled to one whole window once the cost is known
        self._credit_at = now
        self._traced_since: float | None = None  # start of an open window of ours
        self._trace_spent = 0.0
        self._windows = 0
        self._traced_seconds = 0.0
        self._deferred = 0
        self._waiting = False  # a window is wanted and not yet affordable
        self._stretched = False  # the interval is past the interval option
        self._ticks = 0
        self._said_ceiling = False
        self._said_deferred = False

    # --- leakwatch's own CPU ----------------------------------------------------------------

    def observe_contention(self, sched: tuple[float, float] | None) -> None:
        """Take the seconds the process's threads have run and waited for a core so far
        (`probes.process.run_and_wait_seconds`); the next tick's pace uses the share."""
        if sched is None:
            return
        last, self._last_sched = self._last_sched, sched
        if last is None:
            return
        ran, waited = sched[0] - last[0], sched[1] - last[1]
        if ran < 0.0 or waited < 0.0:
            return  # a thread ended and took its counts with it: count from this reading
        if ran + waited < CORE_SHARE_MIN_SECONDS:
            self._last_sched = last  # too short to tell: keep counting from the last reading
            return
        share = max(CORE_SHARE_FLOOR, ran / (ran + waited))
        self.core_share = share if not self._share_seen else self.core_share + CPU_SMOOTHING * (share - self.core_share)
        self._share_seen = True

    @property
    def budget(self) -> float:
        """The share of one core leakwatch may spend now: cpu_budget of the process's share."""
        return self.config.cpu_budget * self.core_share

    def after_tick(self, cpu_seconds: float, objects: int) -> bool:
        """Take one tick's CPU time; True when the interval (and maybe the window) changed.

        Only what the user left at its default moves: an `interval` the user set is kept even
        when it costs more than the budget (logged once as a warning; the spend is exported and
        LeakwatchOverBudget fires), and a `window` the user set caps how far the interval may
        stretch (the detector needs `WINDOW_TICKS` samples in it)."""
        cpu = max(0.0, cpu_seconds)
        self._own_cpu += cpu
        self._tick_cpu = cpu if self._tick_cpu is None else self._tick_cpu + CPU_SMOOTHING * (cpu - self._tick_cpu)
        ceiling = max(self.config.interval, MAX_INTERVAL)
        held = ""  # the option that keeps the pace from following the cost
        if self.config.given("interval"):
            ceiling, held = self.config.interval, "interval"
        elif self.config.given("window") and self.config.window / WINDOW_TICKS < ceiling:
            ceiling, held = max(self.config.interval, self.config.window / WINDOW_TICKS), "window"
        wanted = min(ceiling, max(self.config.interval, self._tick_cpu / (TARGET_SHARE * self.budget)))
        self._ticks += 1
        if wanted == ceiling and self._tick_cpu > self.budget * ceiling and self._ticks >= SETTLED_TICKS:
            self._over_budget(objects, ceiling, held)
        if wanted == self.interval or (
            wanted > self.config.interval and self.interval / STRETCH_DOWN <= wanted <= self.interval * STRETCH_UP
        ):
            return False  # (a pace back at the interval option is taken at once)
        self.interval = wanted
        if not self.config.given("window"):
            self.window = max(self.config.window, WINDOW_TICKS * self.interval)
        # Leaving the option's pace and coming back to it are news; the moves between follow
        # the noise of CPU clocks and are logged at debug level.
        stretched = self.interval > self.config.interval
        level = logging.INFO if stretched != self._stretched else logging.DEBUG
        self._stretched = stretched
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "leakwatch: a sample of %s objects costs %.0f ms of CPU; to keep within cpu_budget %g%%%s "
                "the interval is now %.1f s (default %.1f s) and the window %.0f s (default %.0f s)",
                f"{objects:,}",
                1000 * self._tick_cpu,
                100 * self.config.cpu_budget,
                self._share_note(),
                self.interval,
                self.config.interval,
                self.window,
                self.config.window,
            )
        return True

    def _over_budget(self, objects: int, pace: float, held: str) -> None:
        """Say once that sampling costs more than the budget at the slowest pace allowed."""
        if self._said_ceiling:
            return
        self._said_ceiling = True
        if held:
            why = f"the {held} option ({getattr(self.config, held):g} s) is used as given"
            advice = f"Raise cpu_budget, lengthen {held}, or leave it unset so leakwatch can space samples out"
        else:
            why = "sampling goes on at that pace"
            advice = "Raise cpu_budget, or set census=false"
        logger.warning(
            "leakwatch: a sample of %s objects costs %.0f ms of CPU: %.2f%% of a core at one sample every %g s, "
            "more than cpu_budget %g%%%s allows; %s. %s",
            f"{objects:,}",
            1000 * (self._tick_cpu or 0.0),
            100 * (self._tick_cpu or 0.0) / pace,
            pace,
            100 * self.config.cpu_budget,
            self._share_note(),
            why,
            advice,
        )

    def _share_note(self) -> str:
        if self.core_share >= 0.95:
            return ""
        return f" of the {100 * self.core_share:.0f}% of a core this process gets (its threads wait for one)"

    @property
    def growth_scale(self) -> float:
        """How much longer the window is than the window option (least growth scales with it)."""
        return self.window / self.config.window

    # --- tracing's cost to the application ----------------------------------------------------

    def observe_process(self, now: float, process_cpu: float) -> None:
        """Take the process's CPU clock (every thread's): what the application used since the
        last reading, less leakwatch's own ticks, is its busy share (readings spanning one of
        our windows are left out: tracing itself inflates them)."""
        last = self._last_process
        self._last_process = (now, process_cpu, self._own_cpu)
        traced, self._traced_between = self._traced_between, self._traced_since is not None
        if last is None or traced or now - last[0] <= 0.0:
            return
        used = (process_cpu - last[1]) - (self._own_cpu - last[2])
        share = min(1.0, max(0.0, used / (now - last[0])))
        self.busy = share if not self._busy_seen else self.busy + CPU_SMOOTHING * (share - self.busy)
        self._busy_seen = True

    @property
    def trace_rate(self) -> float:
        """Application-seconds of tracing's cost each second earns: trace_budget of the process's
        share of a core (a process on half a core does half the work a traced second slows)."""
        return self.config.trace_budget * self.core_share

    @property
    def trace_cost(self) -> float:
        """Application-seconds one traced second costs it."""
        return max(0.0, self.slowdown - 1.0) * max(BUSY_FLOOR, self.busy)

    def affordable_window(self, now: float, shortest: float) -> float:
        """Seconds of tracing the credit pays for now, at most `trace_window`; 0 when it does not
        yet pay for `shortest` seconds (counted, and logged the first time)."""
        self._accrue(now)
        cost = self.trace_cost
        if cost == 0.0:
            return self.config.trace_window
        # A trace_window the user set is the length of every window: one opens when the
        # credit pays for all of it, never a shorter one.
        shortest = self.config.trace_window if self.config.given("trace_window") else min(self.config.trace_window, shortest)
        # Credit still accrues while the window is open: it pays for L seconds while
        # credit + budget * L >= cost * L.
        drain = cost - self.trace_rate
        if drain <= 0.0 or self._credit >= drain * shortest:
            self._waiting = False
            if drain <= 0.0 or self.config.given("trace_window"):
                return self.config.trace_window
            return min(self.config.trace_window, self._credit / drain)
        if not self._waiting:
            self._waiting = True
            self._deferred += 1
            if not self._said_deferred:
                self._said_deferred = True
                wait = (drain * shortest - self._credit) / self.trace_rate
                logger.info(
                    "leakwatch: tracing slows allocation-heavy code %.1fx here and the application keeps "
                    "%.0f%% of a core busy; to keep tracing's cost within trace_budget %g%% the next "
                    "tracing window opens in about %.0f s",
                    self.slowdown,
                    100 * self.busy,
                    100 * self.config.trace_budget,
                    wait,
                )
        return 0.0

    def window_opened(self, now: float, ours: bool) -> None:
        """A window began; `ours` when leakwatch started tracing (not the application)."""
        self._accrue(now)
        self._traced_since = now if ours else None
        self._traced_between = self._traced_between or ours
        self._windows += ours

    def window_closed(self, now: float) -> None:
        self._accrue(now)
        self._traced_since = None

    def _accrue(self, now: float) -> None:
        """Credit for the time since the last call; the cost of our tracing meanwhile."""
        elapsed = max(0.0, now - self._credit_at)
        self._credit_at = now
        cap = self.trace_cost * self.config.trace_window
        if not self._filled and cap > 0.0:
            # The credit starts full, as a token bucket does: the first window (the first
            # answer to "where does this leak come from") does not wait hours for its credit.
            self._filled, self._credit = True, cap
        earned = self.trace_rate * elapsed
        if self._traced_since is not None:
            self._traced_seconds += elapsed
            spent = self.trace_cost * elapsed
            self._trace_spent += spent
            earned -= spent
        self._credit += earned
        if cap > 0.0:
            self._credit = min(self._credit, cap)

    # --- the snapshot ---------------------------------------------------------------------------

    def snapshot(self, now: float) -> Budget:
        self._accrue(now)
        uptime = max(now - self._started, 1e-9)
        return Budget(
            interval=self.interval,
            window=self.window,
            cpu_spend=(self._tick_cpu or 0.0) / self.interval,
            core_share=self.core_share,
            trace_slowdown=self.slowdown,
            busy=self.busy,
            trace_spend=self._trace_spent / uptime,
            trace_credit=self._credit,
            windows=self._windows,
            traced_seconds=self._traced_seconds,
            windows_deferred=self._deferred,
        )
