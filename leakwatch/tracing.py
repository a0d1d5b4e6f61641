"""The trace scheduler: when tracemalloc windows open and close.

Tracing costs the application far more than a census (every allocation pays while it is on),
so it runs only in windows, and only for growth the cheap signals cannot place:

- A growing type whose sites are unknown gets a short attribution window (a second or half a
  tick, just before the tick that reads it), which samples where its live instances come from.
- Growth no type explains (interpreter blocks, RSS) gets a whole window of site series
  (`trace_window` seconds, at least `WINDOW_SAMPLES` ticks), from which the detector names lines.
- Either is spent only on growth that has lasted `detector.SITE_TRIGGER_AGE` of a window: a
  cache that fills for a while after warm-up has stopped by then. While a growing type is
  younger than that, growth outside types waits for its attribution: the type may explain it.
- The cost governor's credit pays for each window (`Governor.affordable_window`); after one,
  tracing rests `TRACE_COOLDOWN` times as long. `tracemalloc="always"` keeps one window open;
  an application's own tracing is read for free and never stopped.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Sequence

from leakwatch import detector
from leakwatch.config import Config
from leakwatch.governor import SHORTEST_WINDOW, Governor
from leakwatch.history import History
from leakwatch.model import SeriesKey
from leakwatch.probes.sites import SiteProbe, measure_slowdown
from leakwatch.trend import MIN_POINTS

# Kinds and keys that describe one tracing window and start from zero with the next.
WINDOW_KINDS = ("site", "site_blocks")
WINDOW_PROCESS_KEYS = ("traced", "trace_overhead")
# After a tracing window, wait this many window lengths before the next (at most 1/3 duty).
TRACE_COOLDOWN = 2.0
# Samples a whole tracing window takes at least (the detector judges sites on 8 of them).
WINDOW_SAMPLES = MIN_POINTS + 2
# Slack for a timer that fires a little early.
EARLY = 0.005


class TraceScheduler:
    """Opens and closes the site probe's tracing windows for one watcher.

    Not thread-safe: the watcher calls it with its tick lock held (`planned_at` and `due` are
    plain reads, safe without it). `sites` is None when tracing is off.
    """

    def __init__(self, config: Config, sites: SiteProbe | None, governor: Governor, history: History) -> None:
        self._config = config
        self._sites = sites
        self._governor = governor
        self._history = history
        self._length = config.trace_window  # of the open window, as the budget allowed
        self._whole = False  # the open window is for site series, not only attribution
        self._resume_at = 0.0
        self.planned_at: float | None = None  # a window shorter than a tick starts then

    @property
    def state(self) -> str:
        """"off", "external" (the application traces), "window" or "idle"."""
        sites = self._sites
        if sites is None:
            return "off"
        if sites.external:
            return "external"
        return "window" if sites.active else "idle"

    @property
    def length(self) -> float:
        """Seconds the open (or last) window runs, as the budget allowed."""
        return self._length

    def gap(self, interval: float) -> float:
        """Seconds to the next tick: the governed `interval`, shorter inside a whole window,
        whose sites are judged on at least `WINDOW_SAMPLES` samples even when a big heap has
        stretched the interval (a few more ticks once in hours of credit)."""
        sites = self._sites
        if self._whole and sites is not None and sites.active:
            return min(interval, self._length / WINDOW_SAMPLES)
        return interval

    def due(self, next_tick_at: float) -> float:
        """When the thread must next wake: the next tick, the end of an open window, or the
        start of a window planned to end at the next tick."""
        sites = self._sites
        if sites is not None and sites.active and self._config.tracemalloc == "auto":
            return min(next_tick_at, sites.started_at + self._length)
        if self.planned_at is not None:
            return min(next_tick_at, self.planned_at)
        return next_tick_at

    def open_planned(self, now: float) -> None:
        """Start the window planned for now (unless someone else began tracing meanwhile)."""
        self.planned_at = None
        sites = self._sites
        if sites is not None and not sites.active and not tracemalloc.is_tracing():
            self.open(now)

    def open(self, now: float) -> None:
        """Start a window with empty window series."""
        sites = self._sites
        if sites is None:
            return
        for kind in WINDOW_KINDS:
            self._history.reset(kind)
        for key in WINDOW_PROCESS_KEYS:
            self._history.reset("process", key)
        ours = not tracemalloc.is_tracing()
        sites.start_window(now)
        self._governor.window_opened(now, ours)

    def close(self) -> None:
        """End our window, if one is open (at stop)."""
        if self._sites is not None:
            self._sites.stop_window()

    def steer(
        self, unexplained: Sequence[SeriesKey], verdict: detector.Verdict, window: float, now: float, threaded: bool
    ) -> None:
        """After a tick: close a window that is done; open one for `unexplained` growth that
        has lasted. `threaded` says the watcher's thread runs the ticks, so a window shorter
        than a tick can be started between them; ticks driven by hand close windows only at
        whole intervals."""
        sites = self._sites
        if sites is None or self._config.tracemalloc != "auto":
            return
        if sites.active:
            # A window closes on the tick `due` times for its end; a late tick still counts.
            if now - sites.started_at >= self._length - EARLY or sites.over_budget():
                sites.stop_window()
                self._governor.window_closed(now)
                self._resume_at = now + TRACE_COOLDOWN * (now - sites.started_at)
            return
        # Tracing is spent only on growth that has lasted as long as a type's must before it
        # is named: a cache filling after warm-up, or a type that grows for a while and stops,
        # has stopped by then. (A confirmed suspect has lasted by definition.)
        lasting = detector.SITE_TRIGGER_AGE * window
        wanted = [k for k in unexplained if now - verdict.pending.get(k, (-math.inf, 0.0))[0] >= lasting]
        if not wanted or now < self._resume_at or self.planned_at is not None:
            return
        if all(k.kind != "type" for k in wanted) and any(k.kind == "type" for k in unexplained):
            # A growing type, too young to attribute yet, may explain the blocks and RSS that
            # grow with it: its short window comes first (within half a window), and a whole
            # window opens only for what its sites leave unexplained.
            return
        if tracemalloc.is_tracing():  # the application's own tracing: reading it costs nothing more
            self._length, self._whole = self._config.trace_window, True
            self.open(now)
            return
        self._plan(wanted, now, threaded)

    def _plan(self, wanted: Sequence[SeriesKey], now: float, threaded: bool) -> None:
        governor = self._governor
        if governor.slowdown == 0.0:
            governor.slowdown = measure_slowdown(self._config.trace_frames)
        # Only types to attribute: a short window finds their sites (one shorter than a tick
        # needs the thread to start it between ticks). Growth no type explains needs a whole
        # window of site series to find where it is.
        whole = all(key.kind != "type" for key in wanted)
        if whole:
            shortest = self._config.trace_window
        else:
            shortest = min(SHORTEST_WINDOW, governor.interval / 2) if threaded else governor.interval
        length = governor.affordable_window(now, shortest)
        if not whole and not self._config.given("trace_window"):
            length = min(length, shortest)  # attribution needs no more: keep the credit for whole windows
        if not threaded:  # closed by a later tick: whole intervals only, or it would overspend
            length = length // governor.interval * governor.interval
        if length <= 0.0:
            return
        self._length, self._whole = length, whole
        if length >= governor.interval or not threaded:
            self.open(now)
        else:
            # Shorter than a tick: trace the last `length` seconds before the next tick, which
            # reads the sites and closes the window.
            self.planned_at = now + governor.interval - length
