"""Pure functions from history to suspects: no clock, no I/O, no gc calls.

A series is *growing* over a window when all of these hold (see docs/detection.md):

1. enough evidence: at least `MIN_POINTS` points spanning half the window or more;
2. a robust slope: the Theil-Sen slope (median of pairwise slopes) is at least the minimum
   rate (`min_growth_*` per window);
3. a real trend: a one-sided Mann-Kendall test rejects "no trend" at `significance`, with
   its variance widened for autocorrelation (a wandering series is not a trend);
4. never released: split the window in quarters; the floor (minimum) of each quarter does
   not fall back, the last floor sits at least half the minimum growth above the first, and
   the floor rose in at least two of the three steps: a sawtooth's floors stay at its base,
   a one-time load rises once, a filling cache stops rising;
5. still going: the second half of the window reaches a new peak, and its Theil-Sen slope
   keeps at least `KEEP_PACE` of the first half's (a filling cache or a bounded structure
   turning over slows down; a leak does not);
6. beyond its past: the last quarter's floor is above every earlier floor in the history
   (after warm-up), which a working set wandering around a mean does not manage for long.

The same test also runs on the whole history since warm-up (downsampled points keep their
floor, so churn averages out), which finds trickles too slow to see in one window, as long
as the last window still rose above everything before it.

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
from leakwatch.model import SeriesKey, Suspect, unit_of

MIN_POINTS = 8
BINS = 32  # a view is judged on at most this many equal-time stretches
MAX_POINTS = 48  # pairwise statistics are O(n^2); longer windows are subsampled evenly
PROCESS_SUSPECT_KEY = "rss"
RSS = SeriesKey("process", PROCESS_SUSPECT_KEY)
# A traced share of RSS growth below this leaves the growth "not explained by Python".
EXPLAINED_SHARE = 0.5
# Interpreter blocks one object of a growing type may hold: itself, its dict, its values.
BLOCKS_PER_OBJECT = 4.0
# The largest block pymalloc hands out; bigger requests go to malloc and show in RSS alone.
MAX_BLOCK_BYTES = 512
# A site whose in-window block growth exceeds the whole process's net block growth this many
# times cannot be net growth: it is a bounded structure turning over (see docs/detection.md).
SITE_NET_FACTOR = 2.0
# Growth that slows to less than this share of its first-half pace is filling up (a cache
# warming, a bounded structure turning over), not leaking.
KEEP_PACE = 0.4
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
class Trend:
    """Evidence that one series grows."""

    slope: float
    p: float
    current: float
    since: float  # sample-clock time the growth began, as far as the window shows


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


# --- statistics -----------------------------------------------------------------------------


def subsample(n: int, limit: int = MAX_POINTS) -> list[int]:
    """At most `limit` evenly spread indexes of range(n), always keeping the last."""
    if n <= limit:
        return list(range(n))
    step = (n - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def theil_sen(t: Sequence[float], v: Sequence[float]) -> float:
    """Median of the slopes between every pair of points (robust to ~29% outliers)."""
    slopes = [(v[j] - v[i]) / (t[j] - t[i]) for i in range(len(t)) for j in range(i + 1, len(t)) if t[j] > t[i]]
    if not slopes:
        return 0.0
    slopes.sort()
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else 0.5 * (slopes[mid - 1] + slopes[mid])


def lag1_autocorrelation(t: Sequence[float], v: Sequence[float], slope: float) -> float:
    """Lag-1 autocorrelation of the residuals around a line of this slope."""
    r = [vi - slope * ti for ti, vi in zip(t, v, strict=False)]
    mean = sum(r) / len(r)
    d = [x - mean for x in r]
    den = sum(x * x for x in d)
    if den <= 0:
        return 0.0
    return sum(a * b for a, b in zip(d, d[1:], strict=False)) / den


def mann_kendall(v: Sequence[float], rho: float = 0.0) -> float:
    """One-sided p-value of the Mann-Kendall test for an increasing trend (tie-corrected).

    `rho`, the lag-1 autocorrelation of the detrended series, inflates the variance by
    (1 + rho) / (1 - rho) when positive (Yue and Wang's effective sample size): a wandering
    series has far fewer independent points than samples, and would otherwise pass for a trend.
    """
    n = len(v)
    if n < 3:
        return 1.0
    s = 0
    for i in range(n - 1):
        vi = v[i]
        for j in range(i + 1, n):
            d = v[j] - vi
            s += (d > 0) - (d < 0)
    ties: dict[float, int] = {}
    for x in v:
        ties[x] = ties.get(x, 0) + 1
    var = (n * (n - 1) * (2 * n + 5) - sum(k * (k - 1) * (2 * k + 5) for k in ties.values())) / 18.0
    if var <= 0 or s <= 0:
        return 1.0
    if rho > 0:
        rho = min(rho, 0.95)
        var *= (1 + rho) / (1 - rho)
    z = (s - 1) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def quarter_floors(t: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> tuple[list[float], list[float]]:
    """Minimum and maximum of each time quarter of the points (empty quarters repeat the last)."""
    t0, t1 = t[0], t[-1]
    width = (t1 - t0) / 4 or 1.0
    floors = [math.inf] * 4
    peaks = [-math.inf] * 4
    for ti, low, high in zip(t, lo, hi, strict=True):
        q = min(3, int((ti - t0) / width))
        floors[q] = min(floors[q], low)
        peaks[q] = max(peaks[q], high)
    for q in range(1, 4):
        if floors[q] == math.inf:
            floors[q], peaks[q] = floors[q - 1], peaks[q - 1]
    return floors, peaks


def assess(
    t: Sequence[float],
    lo: Sequence[float],
    hi: Sequence[float],
    min_rate: float,
    significance: float,
    past: Callable[[], float] | None = None,
) -> Trend | None:
    """The growth test of the module docstring on one window of points; None if not growing."""
    n = len(t)
    if n < MIN_POINTS or t[-1] <= t[0]:
        return None
    span = t[-1] - t[0]
    # Cheapest rejections first: most series do not grow at all.
    if lo[-1] - min(lo) < 0.5 * min_rate * span:
        return None
    floors, peaks = quarter_floors(t, lo, hi)
    eps = 0.05 * min_rate * span
    if floors[3] - floors[0] < 0.5 * min_rate * span:
        return None
    if any(floors[q + 1] < floors[q] - eps for q in range(3)):
        return None
    if sum(floors[q + 1] > floors[q] + eps for q in range(3)) < 2:
        return None
    if max(peaks[2], peaks[3]) <= max(peaks[0], peaks[1]) + eps:
        return None
    if past is not None and floors[3] <= past() + eps:
        return None
    idx = subsample(n)
    ts = [t[i] for i in idx]
    vs = [lo[i] for i in idx]
    slope = theil_sen(ts, vs)
    if slope < min_rate:
        return None
    p = mann_kendall(vs, lag1_autocorrelation(ts, vs, slope))
    if p >= significance:
        return None
    half = len(ts) // 2
    if theil_sen(ts[half:], vs[half:]) < KEEP_PACE * theil_sen(ts[: half + 1], vs[: half + 1]):
        return None
    since = t[0]
    for ti, low in zip(t, lo, strict=True):
        if low <= floors[0]:
            since = ti
    return Trend(slope=slope, p=p, current=lo[-1], since=since)


def binned(series: Series, i: int, bins: int = BINS) -> tuple[list[float], list[float], list[float]]:
    """Points from index `i` on, merged into at most `bins` stretches of equal time.

    History merges old points (each then holds the min and max of many samples), so a raw
    recent point and a merged old one are not alike: a churning series' old floors sit lower
    only because they are minima of more samples. Equal-time bins compare like with like.
    """
    t, lo, hi = series.t, series.lo, series.hi
    n = len(t) - i
    if n <= 0:
        return [], [], []
    t0, t1 = t[i], t[-1]
    width = (t1 - t0) / bins or 1.0
    out_t: list[float] = []
    out_lo: list[float] = []
    out_hi: list[float] = []
    current = -1
    for k in range(i, len(t)):
        b = min(bins - 1, int((t[k] - t0) / width))
        if b != current:
            out_t.append(t[k])
            out_lo.append(lo[k])
            out_hi.append(hi[k])
            current = b
        else:
            out_t[-1] = t[k]
            out_lo[-1] = min(out_lo[-1], lo[k])
            out_hi[-1] = max(out_hi[-1], hi[k])
    return out_t, out_lo, out_hi


def past_floor(series: Series, start: float, end: float, width: float) -> float:
    """Highest floor (minimum over `width`-long stretches) between `start` and `end`."""
    i, j = series.since(start), series.since(end)
    if j - i < 2:
        return -math.inf
    best = -math.inf
    chunk_start = series.t[i]
    chunk_min = math.inf
    for k in range(i, j):
        if series.t[k] - chunk_start >= width:
            best = max(best, chunk_min)
            chunk_start, chunk_min = series.t[k], math.inf
        chunk_min = min(chunk_min, series.lo[k])
    if series.t[j - 1] - chunk_start >= 0.5 * width:
        best = max(best, chunk_min)
    return best


def still_growing(series: Series, now: float, window: float, eps: float) -> bool:
    """Whether the last `window` rose: a new high over everything before it, or a floor above
    the previous window's floor (what a trickle under heavy churn shows)."""
    cut = series.since(now - window)
    if cut == 0:
        return True
    if cut >= len(series):
        return False
    if max(series.hi[cut:]) > max(series.hi[:cut]) + eps:
        return True
    before = series.since(now - 2 * window)
    return min(series.lo[cut:]) > min(series.lo[before:cut]) + eps


# --- verdicts -------------------------------------------------------------------------------


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


def memory_growth(history: History, now: float, window: float) -> float | None:
    """The process's RSS growth (Theil-Sen, bytes per second) over the last `window` seconds;
    None with too few points. What the time left until a memory limit is projected from."""
    return _slope_between(history.get("process", "rss"), now - window, now)


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
                )
            )
        elif before is not None and still_rising(kind, unit, series, now, p):
            sites = type_sites.get(key) or before.sites
            suspects.append(dataclasses.replace(before, current=series.last(), sites=sites))
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
