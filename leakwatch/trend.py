"""The growth test on one series: is it leaking over this window?

A series is *growing* over a window when all of these hold (see docs/detection.md):

1. enough evidence: at least `MIN_POINTS` points spanning half the window or more;
2. a robust slope: the Theil-Sen slope (median of pairwise slopes) is at least the minimum
   rate (`min_growth_*` per window);
3. a real trend: "no trend" is rejected at `significance` by either of two one-sided tests,
   each held to half of it: Mann-Kendall with its variance widened for autocorrelation (a
   wandering series is not a trend), or a sign test on the steps between points (a leak
   whose steps vary a little wanders around its line, which widens Mann-Kendall's variance
   until even a series that rises at every step fails it; a wandering series with no drift
   rises and falls about as often);
4. never released: split the window in quarters; the floor (minimum) of each quarter does
   not fall back, the last floor sits at least half the minimum growth above the first, and
   the floor rose in at least two of the three steps: a sawtooth's floors stay at its base,
   a one-time load rises once, a filling cache stops rising;
5. still going: the second half of the window reaches a new peak, and its Theil-Sen slope
   keeps at least `KEEP_PACE` of the first half's (a filling cache or a bounded structure
   turning over slows down; a leak does not);
6. beyond its past: the last quarter's floor is above every earlier floor in the history
   (after warm-up), which a working set wandering around a mean does not manage for long.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from leakwatch.history import Series

MIN_POINTS = 8
BINS = 32  # a view is judged on at most this many equal-time stretches
MAX_POINTS = 48  # pairwise statistics are O(n^2); longer windows are subsampled evenly
# Growth that slows to less than this share of its first-half pace is filling up (a cache
# warming, a bounded structure turning over), not leaking.
KEEP_PACE = 0.4


@dataclasses.dataclass(frozen=True)
class Trend:
    """Evidence that one series grows."""

    slope: float
    p: float
    current: float
    since: float  # sample-clock time the growth began, as far as the window shows
    base: float = 0.0  # the value there (the first quarter's floor)



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


def rises_p(v: Sequence[float]) -> float:
    """One-sided p-value of the sign test on the steps of `v`: the chance that a series with
    no drift, no likelier to rise than not at each step, rises at least as often. A step that
    does not move counts as no rise: a series that sits still and now and then steps up (RSS,
    which the allocator seldom gives back) is no trend for this test, however few its falls."""
    steps = [b - a for a, b in zip(v, v[1:], strict=False)]
    n = len(steps)
    if n == 0:
        return 1.0
    rises = sum(d > 0 for d in steps)
    return sum(math.comb(n, k) for k in range(rises, n + 1)) / 2.0**n


def trend_p(t: Sequence[float], v: Sequence[float], slope: float) -> float:
    """The growth test's p-value (item 3 of the module docstring): the smaller of the
    autocorrelation-widened Mann-Kendall test's and the steps' sign test's, doubled for
    trying two (Bonferroni)."""
    return min(1.0, 2.0 * min(mann_kendall(v, lag1_autocorrelation(t, v, slope)), rises_p(v)))


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
    p = trend_p(ts, vs, slope)
    if p >= significance:
        return None
    half = len(ts) // 2
    if theil_sen(ts[half:], vs[half:]) < KEEP_PACE * theil_sen(ts[: half + 1], vs[: half + 1]):
        return None
    since = t[0]
    for ti, low in zip(t, lo, strict=True):
        if low <= floors[0]:
            since = ti
    return Trend(slope=slope, p=p, current=lo[-1], since=since, base=floors[0])


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
