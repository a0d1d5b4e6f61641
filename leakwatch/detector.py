"""Pure functions from history to suspects: no clock, no I/O, no gc calls.

Each series is judged with the growth test of `leakwatch.trend` on its last window, and on
its whole history since warm-up (downsampled points keep their floor, so churn averages out),
which finds trickles too slow to see in one window, as long as the last window still rose
above everything before it (see docs/detection.md).

A candidate becomes a suspect after it has held for half a window (gaps of up to a quarter
window allowed): one window after warm-up for a steady leak.
A suspect is cleared when a whole window passes with neither a new high nor a floor above
the previous window's. A site suspect is re-judged by each tracing window instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

from leakwatch.history import History, Series
from leakwatch.model import CPU_KEY, Sample, SeriesKey, Suspect, unit_of
from leakwatch.trend import MIN_POINTS, Trend, assess, binned, past_floor, still_growing, subsample, theil_sen

PROCESS_SUSPECT_KEY = "rss"
RSS = SeriesKey("process", PROCESS_SUSPECT_KEY)
# The key of the process's RSS among a report's trends (suspects' are their 12-hex-digit ids).
RSS_TREND = "rss"
# A traced share of RSS growth below this leaves the growth "not explained by Python".
EXPLAINED_SHARE = 0.5
# Interpreter blocks one object of a growing type may hold: itself, its dict, its values.
BLOCKS_PER_OBJECT = 4.0
# The largest block pymalloc hands out; bigger requests go to malloc and show in RSS alone.
MAX_BLOCK_BYTES = 512
# A site whose in-window block growth exceeds the whole process's net block growth this many
# times cannot be net growth: it is a bounded structure turning over (see docs/detection.md).
SITE_NET_FACTOR = 2.0
# A leak's bytes spread over several sites (the object, its __dict__, its strings), and a site
# is only judged while a cheap signal already shows growth, so a site needs a quarter of the
# minimum rate.
SITE_RATE_SHARE = 0.25
# The long view (all history since warm-up) is judged once it spans this many windows.
LONG_SPAN = 3.0
# A candidate that misses ticks for less than this share of a window keeps its start time.
GAP = 0.25
# A candidate becomes a suspect after holding this many windows. A candidate needs half a
# window of points, so a steady leak is named one window after warm-up: by then the test has
# passed on every tick of a whole window of growth, which a working set wandering upward or a
# cache still filling at the start of that window does not keep up.
CONFIRM = 0.5
# How long (in windows) the growth that opened a tracing window must have lasted before a
# site is named: as long as a type's must before it is named (a cache filling just after
# warm-up fills the same lines a leak would, and has stopped by then).
SITE_TRIGGER_AGE = CONFIRM
# Sites are judged on most of a tracing window, so that turnover has time to level off.
SITE_SPAN = 0.75
# A suspect that stops growing is held (not cleared) while the process's CPU over the last
# window is at most this share of what it was while the suspect grew: its load stopped.
QUIET_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Params:
    """What the detector needs from the config, in plain numbers."""

    window: float = 240.0
    warmup: float = 30.0
    significance: float = 0.01
    min_growth_objects: float = 100.0
    min_growth_bytes: float = 1024.0**2
    trace_window: float = 60.0
    can_trace: bool = True
    epoch: float = 0.0  # add to sample-clock times to get wall-clock times

    def min_rate(self, unit: str) -> float:
        """Least growth per second that counts: "objects" and "bytes" from their options;
        "blocks" (interpreter blocks, at most `MAX_BLOCK_BYTES` each) is the byte minimum in
        blocks, so a slow creep of small blocks (free lists, interned strings) is no trigger."""
        if unit == "blocks":
            return self.min_growth_bytes / MAX_BLOCK_BYTES / self.window
        growth = self.min_growth_bytes if unit == "bytes" else self.min_growth_objects
        return growth / self.window


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The detector's output, and its memory between ticks (pass it back in as `prior`).

    `pending` maps each candidate's series to (first, last) times it was a candidate; a candidate may miss
    a few ticks (up to `GAP` of a window) without starting over. `triggers` are the keys whose
    growth tracing could explain or attribute.
    """

    suspects: tuple[Suspect, ...] = ()
    pending: Mapping[SeriesKey, tuple[float, float]] = dataclasses.field(default_factory=dict)
    triggers: tuple[SeriesKey, ...] = ()
    growing_at: float = -math.inf  # last time anything but a site was growing

    def protected(self) -> set[tuple[str, str]]:
        """(kind, key) of every candidate and suspect: history must keep their series."""
        keys = {(s.kind, s.key) for s in self.suspects}
        keys.update(self.pending)
        return keys


def _window_trend(series: Series, now: float, p: Params, unit: str, warm: float) -> Trend | None:
    t_from = max(warm, now - p.window)
    i = series.since(t_from)
    if len(series) - i < MIN_POINTS or series.t[-1] - series.t[i] < 0.5 * p.window:
        return None
    if not _rose(series, i, p.min_rate(unit)):
        return None
    t, lo, hi = binned(series, i)
    return assess(t, lo, hi, p.min_rate(unit), p.significance, lambda: past_floor(series, warm, t_from, p.window / 4))


def still_rising(kind: str, unit: str, series: Series, now: float, p: Params) -> bool:
    """Whether a confirmed suspect keeps growing, though its full test no longer passes.

    A site's series covers one tracing window (bytes allocated since it opened and still
    alive): a leak keeps adding to it, a stopped one adds nothing. Other series must have
    risen within the last window (`still_growing`).
    """
    rate = p.min_rate(unit)
    if kind == "site":
        span = series.t[-1] - series.t[0]
        return span > 0 and series.lo[-1] - series.lo[0] >= 0.5 * SITE_RATE_SHARE * rate * span
    return still_growing(series, now, p.window, 0.05 * rate * p.window)


def _rose(series: Series, i: int, min_rate: float) -> bool:
    """The cheap first test, in C-speed array operations: did the latest value rise enough
    above the lowest since index `i`? Most series fail it and cost nothing more."""
    lo = series.lo
    return lo[-1] - min(lo[i:]) >= 0.5 * min_rate * (series.t[-1] - series.t[i])


def _long_trend(series: Series, now: float, p: Params, unit: str, warm: float) -> Trend | None:
    """Growth over the whole history since warm-up, for leaks too slow to show in one window.

    Downsampled points keep the floor of what they merge, so heavy churn averages out of the
    long view; the growth must still reach past everything before the last window.
    """
    i = series.since(warm)
    if len(series) - i < MIN_POINTS or series.t[-1] - series.t[i] < LONG_SPAN * p.window:
        return None
    if not _rose(series, i, p.min_rate(unit)):
        return None
    trend = assess(*binned(series, i), p.min_rate(unit), p.significance)
    eps = 0.05 * p.min_rate(unit) * p.window
    if trend is None or not still_growing(series, now, p.window, eps):
        return None
    return trend


def _trace_trend(series: Series, p: Params, min_rate: float) -> Trend | None:
    """Growth within the current tracing window (the series starts at the window's start)."""
    t = series.t
    if len(t) < MIN_POINTS or t[-1] - t[0] < SITE_SPAN * p.trace_window:
        return None
    return assess(t, series.lo, series.hi, min_rate, p.significance)


def _slope_between(series: Series | None, t0: float, t1: float) -> float | None:
    if series is None:
        return None
    i, j = series.since(t0), series.since(t1 + 1e-9)
    if j - i < MIN_POINTS // 2:
        return None
    idx = [i + k for k in subsample(j - i)]
    return theil_sen([series.t[k] for k in idx], [series.lo[k] for k in idx])


def held(suspect: Suspect, series: Series, cpu: Series | None, now: float, p: Params) -> bool:
    """Whether a confirmed suspect that stopped growing is a leak whose load stopped, not a
    structure that filled up: the process went quiet (its CPU over the last window is at most
    `QUIET_SHARE` of what it was while the suspect grew) and the suspect still holds at least
    the least growth of a window above where its growth began. It stays a suspect ("held")
    until that memory is released, or the load comes back without the growth (a leak grows
    again with its load; a full structure does not).

    A site's series restarts with each tracing window, and says nothing once its window closed.
    """
    if suspect.kind == "site" or cpu is None or not len(series):
        return False
    if series.last() - suspect.baseline < p.min_rate(suspect.unit) * p.window:
        return False  # released
    grew_from, grew_to = suspect.since - p.epoch, suspect.confirmed_at - p.epoch
    busy = _cpu_rate(cpu, grew_from, max(grew_to, grew_from + 0.5 * p.window))
    quiet = _cpu_rate(cpu, now - p.window, now)
    return busy is not None and quiet is not None and busy > 0.0 and quiet <= QUIET_SHARE * busy


def _cpu_rate(cpu: Series, t0: float, t1: float) -> float | None:
    """CPU seconds per second between `t0` and `t1`, from the cumulative `cpu_seconds` series
    (None when the history does not cover half of that span)."""
    i, j = cpu.since(t0), cpu.since(t1 + 1e-9) - 1
    if j <= i or cpu.t[j] - cpu.t[i] < 0.5 * (t1 - t0):
        return None
    return max(0.0, cpu.hi[j] - cpu.lo[i]) / (cpu.t[j] - cpu.t[i])


def memory_growth(history: History, now: float, window: float) -> float | None:
    """The process's RSS growth (Theil-Sen, bytes per second) over the last `window` seconds;
    None with too few points. What the time left until a memory limit is projected from."""
    return _slope_between(history.get("process", "rss"), now - window, now)


def process_values(history: History, sample: Sample, window: float) -> dict[str, float]:
    """The sample's process memory, and, under a memory limit, how fast RSS grows
    (`rss_growth`, bytes per second over the last `window`)."""
    values = dict(sample.values.get("process", {}))
    if sample.memory_limit > 0:
        growth = memory_growth(history, sample.t, window)
        if growth is not None:
            values["rss_growth"] = growth
    return values


def trends(
    history: History, suspects: Sequence[Suspect], points: int, epoch: float
) -> dict[str, tuple[tuple[float, float], ...]]:
    """Each suspect's history in at most `points` equal-time steps, for charts: (wall-clock
    time, the step's highest value), by suspect id; and the process's RSS under `RSS_TREND`."""
    out: dict[str, tuple[tuple[float, float], ...]] = {}
    for s in suspects:
        chart = chart_points(history, s.kind, s.key, points, epoch)
        if chart:
            out[s.id] = chart
    rss = chart_points(history, "process", PROCESS_SUSPECT_KEY, points, epoch)
    if rss:
        out[RSS_TREND] = rss
    return out


def chart_points(history: History, kind: str, key: str, points: int, epoch: float) -> tuple[tuple[float, float], ...]:
    """One series in at most `points` equal-time steps: (wall-clock time, the step's highest value)."""
    series = history.get(kind, key)
    if series is None or not len(series):
        return ()
    t, _, hi = binned(series, 0, points)
    return tuple((round(x + epoch, 3), y) for x, y in zip(t, hi, strict=True))


def rss_explained(history: History, p: Params, python_growing: bool) -> bool | None:
    """Whether Python-visible allocations explain the RSS growth; None while undecided.

    Growth of gc-visible objects or of interpreter blocks (`python_growing`) explains it.
    Otherwise, with a tracing window on record, compare the traced bytes' slope with RSS's
    over the same stretch (less tracemalloc's own growth).
    """
    if python_growing:
        return True
    traced = history.get("process", "traced")
    # Evidence from the last tracing window counts while the next could not have run yet
    # (a window rests twice its length after it ends).
    stale = p.window + 3 * p.trace_window
    recent = traced is not None and history.last_t is not None and traced.t[-1] >= history.last_t - stale
    if traced is not None and recent and len(traced) >= MIN_POINTS and traced.t[-1] - traced.t[0] >= 0.5 * p.trace_window:
        t0, t1 = traced.t[0], traced.t[-1]
        rss = _slope_between(history.get("process", "rss"), t0, t1)
        overhead = _slope_between(history.get("process", "trace_overhead"), t0, t1) or 0.0
        traced_slope = _slope_between(traced, t0, t1) or 0.0
        if rss is None:
            return None
        net = rss - overhead
        if net < p.min_rate("bytes"):
            return True
        return traced_slope >= EXPLAINED_SHARE * net
    return None if p.can_trace else False


def time_to_verdict(p: Params, interval: float) -> float:
    """Seconds from the first sample until a steady leak can be named: warm-up, half a window
    of points for a candidate, the confirmation hold, and the tick that sees it."""
    return p.warmup + (0.5 + CONFIRM) * p.window + interval


def detect(
    history: History,
    prior: Verdict | None = None,
    params: Params | None = None,
    type_sites: Mapping[str, tuple[str, ...]] | None = None,
    tracing: bool = False,
) -> Verdict:
    """Decide what leaks now, from the history and the previous verdict.

    `type_sites` are allocation sites sampled this tick for type keys; `tracing` says a
    tracing window is open, so the site series hold that window's points.
    """
    p = params or Params()
    prior = prior or Verdict()
    type_sites = type_sites or {}
    if history.last_t is None or history.start is None:
        return prior
    now = history.last_t
    warm = history.start + p.warmup
    old = {s.series: s for s in prior.suspects}
    pending: dict[SeriesKey, tuple[float, float]] = {}
    suspects: list[Suspect] = []
    triggers: list[SeriesKey] = []
    confirm = p.window * CONFIRM

    def note(ident: SeriesKey) -> float:
        """Record a candidate seen now; return when it was first seen."""
        first, last = prior.pending.get(ident, (now, now))
        if now - last > GAP * p.window:
            first = now
        pending[ident] = (first, now)
        return first

    def judge(kind: str, key: str, trend: Trend | None, series: Series, hold: float, detail: str = "") -> None:
        ident = SeriesKey(kind, key)
        unit = unit_of(kind, key)
        before = old.get(ident)
        if trend is not None:
            first = note(ident)
            if before is None and now - first < hold:
                return
            sites = type_sites.get(key) or (before.sites if before else ())
            suspects.append(
                Suspect(
                    kind=kind,
                    key=key,
                    unit=unit,
                    current=trend.current,
                    growth_per_second=trend.slope,
                    since=before.since if before else trend.since + p.epoch,
                    confidence=1.0 - trend.p,
                    confirmed_at=before.confirmed_at if before else now + p.epoch,
                    sites=sites,
                    detail=detail,
                    baseline=before.baseline if before else trend.base,
                )
            )
        elif before is not None and still_rising(kind, unit, series, now, p):
            sites = type_sites.get(key) or before.sites
            suspects.append(dataclasses.replace(before, current=series.last(), sites=sites, state="growing"))
        elif before is not None and held(before, series, history.get("process", CPU_KEY), now, p):
            sites = type_sites.get(key) or before.sites
            suspects.append(
                dataclasses.replace(before, current=series.last(), sites=sites, growth_per_second=0.0, state="held")
            )
        elif before is None and ident in prior.pending and now - prior.pending[ident][1] <= GAP * p.window:
            pending[ident] = prior.pending[ident]

    type_rate = 0.0  # objects per second that growing types add
    for key, series in history.kind("type").items():
        trend = _window_trend(series, now, p, "objects", warm) or _long_trend(series, now, p, "objects", warm)
        judge("type", key, trend, series, confirm)
        type_rate += trend.slope if trend is not None else 0.0
    type_growing = any(s.kind == "type" for s in suspects) or any(k.kind == "type" for k in pending)
    confirmed = {s.series for s in suspects}
    triggers.extend(k for k in pending if k.kind == "type" and k not in confirmed)
    if not any(s.kind == "site" for s in old.values()):
        # Attribution: until a site is known, tracing may tell where the growing type comes from.
        triggers.extend(s.series for s in suspects if s.kind == "type" and not s.sites)

    blocks = history.get("process", "py_blocks")
    blocks_trend = (
        (_window_trend(blocks, now, p, "blocks", warm) or _long_trend(blocks, now, p, "blocks", warm))
        if blocks is not None
        else None
    )
    # Blocks that growing types account for (each object, its dict and a few values) need no
    # tracing window to place: attribution finds where the types come from.
    if blocks_trend is not None and blocks_trend.slope > BLOCKS_PER_OBJECT * type_rate:
        triggers.append(SeriesKey("process", "py_blocks"))
        note(SeriesKey("process", "py_blocks"))

    rss = history.get("process", PROCESS_SUSPECT_KEY)
    if rss is not None:
        rss_trend = _window_trend(rss, now, p, "bytes", warm) or _long_trend(rss, now, p, "bytes", warm)
        # Interpreter blocks are at most 512 bytes: a slow climb of blocks (free lists filling,
        # caches warming) cannot explain RSS growing many times faster.
        blocks_explain = (
            blocks_trend is not None
            and rss_trend is not None
            and blocks_trend.slope * MAX_BLOCK_BYTES >= EXPLAINED_SHARE * rss_trend.slope
        )
        explained = rss_explained(history, p, type_growing or blocks_explain)
        if rss_trend is not None and explained is None:
            triggers.append(RSS)
            if RSS in old:  # stands while new evidence is gathered
                judge("process", PROCESS_SUSPECT_KEY, rss_trend, rss, confirm, "not explained by Python allocations")
            else:
                note(RSS)
        elif explained is False or RSS in old:
            judge("process", PROCESS_SUSPECT_KEY, rss_trend, rss, confirm, "not explained by Python allocations")
        elif rss_trend is not None:
            # Growth that Python explains is no process suspect, but it still grows: it keeps
            # its start time, so the tracing window that explained it can name its sites.
            note(RSS)

    # A process candidate that misses a few ticks keeps its start time, as `judge` keeps a type's
    # (opening a tracing window moves RSS and blocks for a moment).
    named = {s.series for s in suspects}
    for ident, (first, last) in prior.pending.items():
        if ident.kind == "process" and ident not in pending and ident not in named and now - last <= GAP * p.window:
            pending[ident] = (first, last)
    growing = bool(triggers) or any(k.kind != "site" for k in pending) or any(s.kind != "site" for s in suspects)
    growing_at = now if growing else prior.growing_at
    # New sites are named only for growth that has lasted: a confirmed suspect, or a candidate
    # held for a quarter window (a cache filling just after warm-up passes before that).
    lasting = any(s.kind != "site" for s in suspects) or any(
        now - first >= SITE_TRIGGER_AGE * p.window for k, (first, _) in pending.items() if k.kind != "site"
    )
    # A site suspect outlives its tracing window while something else grew within a window.
    _judge_sites(history, p, old, suspects, tracing and lasting, now - growing_at <= p.window, judge)
    suspects.sort(key=lambda s: (s.kind, -s.growth_per_second))
    return Verdict(suspects=tuple(suspects), pending=pending, triggers=tuple(dict.fromkeys(triggers)), growing_at=growing_at)


def _judge_sites(
    history: History,
    p: Params,
    old: Mapping[SeriesKey, Suspect],
    suspects: list[Suspect],
    tracing: bool,
    wanted: bool,
    judge: Callable[..., None],
) -> None:
    """Sites grow only within a tracing window; between windows, a site suspect stands while
    something else still grows (its trigger), and a new window re-judges it."""
    sites = history.kind("site")
    if not tracing:
        if wanted:
            suspects.extend(s for s in old.values() if s.kind == "site")
        return
    blocks = history.get("process", "py_blocks")
    judged: set[str] = set()
    for key, series in sites.items():
        if len(series) < MIN_POINTS or series.t[-1] - series.t[0] < SITE_SPAN * p.trace_window:
            continue
        judged.add(key)
        trend = _trace_trend(series, p, SITE_RATE_SHARE * p.min_rate("bytes"))
        if trend is not None and not _net_growth(history.get("site_blocks", key), blocks, p):
            trend = None
        judge("site", key, trend, series, 0.0)
    if wanted:
        suspects.extend(s for s in old.values() if s.kind == "site" and s.key not in judged)


def _net_growth(site_blocks: Series | None, blocks: Series | None, p: Params) -> bool:
    """Whether a site's in-window block growth could be net growth of the process."""
    if site_blocks is None or blocks is None or len(site_blocks) < MIN_POINTS:
        return True
    t0, t1 = site_blocks.t[0], site_blocks.t[-1]
    site_slope = _slope_between(site_blocks, t0, t1)
    net = _slope_between(blocks, t0, t1)
    if site_slope is None or net is None:
        return True
    return site_slope <= SITE_NET_FACTOR * max(net, 0.0) + p.min_rate("objects")
