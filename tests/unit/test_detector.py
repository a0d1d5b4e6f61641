"""The detector on hand-built histories: every shape in the core issue, leaking or not."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from leakwatch.detector import CONFIRM, Params, time_to_verdict
from leakwatch.model import SeriesKey
from leakwatch.testing import simulate
from leakwatch.trend import assess, lag1_autocorrelation, mann_kendall, rises_p, theil_sen, trend_p

PARAMS = Params(window=60.0, warmup=10.0, significance=0.01, min_growth_objects=100, min_growth_bytes=1024**2, can_trace=False)
TYPE = ("type", "app.Thing")


def keys_ever(verdicts, kind="type"):
    return {s.key for v in verdicts for s in v.suspects if s.kind == kind}


def noisy(seed: int, scale: float):
    rng = random.Random(seed)
    return lambda: rng.uniform(-scale, scale)


# --- statistics --------------------------------------------------------------------------------


def test_theil_sen_ignores_outliers():
    t = list(range(20))
    v = [2.0 * x for x in t]
    v[3] = 1e6
    v[15] = -1e6
    assert theil_sen(t, v) == pytest.approx(2.0)


def test_mann_kendall_separates_trend_from_noise():
    rng = random.Random(1)
    assert mann_kendall([x + rng.uniform(-3, 3) for x in range(40)]) < 1e-6
    assert mann_kendall([rng.uniform(-3, 3) for _ in range(40)]) > 0.01
    assert mann_kendall([5.0] * 30) == 1.0


def test_a_leak_whose_steps_vary_a_little_is_a_trend_though_it_wanders_around_its_line():
    # A type's counts as a CI run saw them (a loop adding 40 objects per pass, slowed by
    # load): it rose at every one of 16 samples, but its steps drift between 1,720 and 1,960,
    # so its distance from the line wanders, and the autocorrelation-widened Mann-Kendall test
    # alone missed it for seconds on end.
    t = [0.0, 0.52, 1.03, 1.54, 2.06, 2.56, 3.08, 3.6, 4.1, 4.62, 5.14, 5.66, 6.17, 6.69, 7.21, 7.73]
    v = [3680, 5480, 7320, 9120, 10880, 12640, 14440, 16360, 18240, 20200, 22160, 24040, 25760, 27600, 29520, 31320]
    slope = theil_sen(t, v)
    assert mann_kendall(v, lag1_autocorrelation(t, v, slope)) > 0.01
    assert rises_p(v) == 0.5**15
    assert assess(t, v, v, 100 / 8, 0.01) is not None


def test_the_two_tests_together_pass_no_more_series_without_drift_than_mann_kendall_alone():
    rng = random.Random(3)
    both = {"walk": 0, "mean-reverting": 0}
    alone = dict(both)
    for _ in range(300):
        x = level = 0.0
        series: dict[str, list[float]] = {"walk": [], "mean-reverting": []}
        for _ in range(40):
            x += rng.gauss(0, 1)
            level = 0.9 * level + rng.gauss(0, 1)
            series["walk"].append(x)
            series["mean-reverting"].append(level)
        t = list(range(40))
        for name, v in series.items():
            slope = theil_sen(t, v)
            both[name] += trend_p(t, v, slope) < 0.01
            alone[name] += mann_kendall(v, lag1_autocorrelation(t, v, slope)) < 0.01
    # Each test held to half the significance: the pair is no more credulous than the one.
    assert all(both[name] <= alone[name] for name in both), (both, alone)
    assert both["walk"] < 0.1 * 300 and both["mean-reverting"] < 0.05 * 300, both
    assert rises_p([5.0] * 30) == 1.0 and rises_p([1, 2, 1, 2, 1, 2, 1]) > 0.5
    # A series that sits still and steps up now and then (RSS): ten rises in 47 steps is no trend.
    steps_up = [float(i // 5) for i in range(48)]
    assert rises_p(steps_up) > 0.99


def test_assess_rejects_too_few_points():
    assert assess([0, 1, 2], [0, 1, 2], [0, 1, 2], 0.1, 0.01) is None


# --- leaks that must be found -----------------------------------------------------------------


def test_steady_growth_is_flagged_with_rate_and_start():
    jitter = noisy(2, 3)
    verdicts = simulate({TYPE: lambda t: 500 + 5 * t + jitter()}, duration=120, interval=1, params=PARAMS)
    (s,) = verdicts[-1].suspects
    assert (s.kind, s.key, s.unit) == ("type", "app.Thing", "objects")
    assert s.growth_per_second == pytest.approx(5, rel=0.1)
    assert s.confidence > 0.99
    assert s.since <= 60


def test_stepwise_bursts_never_released_are_flagged():
    verdicts = simulate({TYPE: lambda t: 1000 + 300 * math.floor(t / 7)}, duration=150, interval=1, params=PARAMS)
    assert keys_ever(verdicts[-1:]) == {"app.Thing"}


def test_slow_trickle_inside_heavy_churn_is_flagged():
    rng = random.Random(3)
    # Up to 3,000 objects in flight at any sample, 3 per second retained.
    verdicts = simulate({TYPE: lambda t: 3 * t + rng.uniform(0, 3000)}, duration=600, interval=1, params=PARAMS)
    assert "app.Thing" in keys_ever(verdicts[-60:])


def test_new_type_appearing_late_is_tracked_and_flagged():
    verdicts = simulate(
        {TYPE: lambda t: None if t < 100 else 20 * (t - 100), ("type", "dict"): lambda t: 50_000},
        duration=220,
        interval=1,
        params=PARAMS,
    )
    assert keys_ever(verdicts[-1:]) == {"app.Thing"}


# --- shapes that must not be flagged ----------------------------------------------------------


def test_bounded_cache_that_fills_then_plateaus():
    verdicts = simulate({TYPE: lambda t: min(5000, 1000 * t)}, duration=300, interval=1, params=PARAMS)
    assert keys_ever(verdicts) == set()


def test_cache_filling_after_warmup_is_cleared_once_it_plateaus():
    # Filling after warm-up looks like growth while it lasts; it must not outlive the plateau.
    verdicts = simulate({TYPE: lambda t: min(8000, 40 * t)}, duration=400, interval=1, params=PARAMS)
    assert verdicts[-1].suspects == ()


def test_accumulate_and_flush_sawtooth():
    verdicts = simulate({TYPE: lambda t: 100 + 80 * (t % 17)}, duration=400, interval=1, params=PARAMS)
    assert keys_ever(verdicts) == set()


def test_working_set_random_walking_around_a_mean():
    for seed in range(5):
        rng = random.Random(seed)
        state = {"x": 5000.0}

        def walk(_t, rng=rng, state=state):
            state["x"] += rng.uniform(-150, 150) + 0.05 * (5000 - state["x"])
            return state["x"]

        verdicts = simulate({TYPE: walk}, duration=900, interval=1, params=PARAMS)
        assert keys_ever(verdicts) == set(), f"seed {seed}"


def test_one_time_load_after_start():
    verdicts = simulate(
        {TYPE: lambda t: 200 if t < 90 else 200 + min(50_000, 20_000 * (t - 90))}, duration=400, interval=1, params=PARAMS
    )
    assert keys_ever(verdicts) == set()


def test_ttl_cache_plateaus_after_its_ttl():
    rng = random.Random(4)
    verdicts = simulate({TYPE: lambda t: 30 * min(t, 30) + rng.uniform(-20, 20)}, duration=400, interval=1, params=PARAMS)
    assert keys_ever(verdicts) == set()


def test_garbage_cycles_freed_only_by_the_collector():
    rng = random.Random(5)
    # Cycles pile up between collections, then drop back: a jagged sawtooth of random period.
    state = {"n": 0.0, "next_gc": 5.0}

    def cycles(t):
        if t >= state["next_gc"]:
            state["n"] = rng.uniform(0, 200)
            state["next_gc"] = t + rng.uniform(3, 25)
        state["n"] += rng.uniform(100, 300)
        return state["n"]

    verdicts = simulate({TYPE: cycles}, duration=600, interval=1, params=PARAMS)
    assert keys_ever(verdicts) == set()


def test_bounded_deque():
    verdicts = simulate({TYPE: lambda t: min(2000, 400 * t)}, duration=300, interval=1, params=PARAMS)
    assert keys_ever(verdicts) == set()


# --- lifecycle of a verdict -------------------------------------------------------------------


def test_suspect_is_confirmed_only_after_holding_half_a_window():
    verdicts = simulate({TYPE: lambda t: 10 * t}, duration=120, interval=1, params=PARAMS)
    first = next(i for i, v in enumerate(verdicts) if v.suspects)
    candidate = next(i for i, v in enumerate(verdicts) if v.pending)
    assert first - candidate >= CONFIRM * PARAMS.window


@pytest.mark.parametrize(
    ("interval", "warmup", "window"),
    [(5.0, 30.0, 240.0), (5.0, 60.0, 180.0), (1.0, 10.0, 60.0), (0.25, 3.0, 10.0), (0.1, 2.0, 5.0), (30.0, 600.0, 3600.0)],
)
def test_a_steady_leak_is_named_within_warmup_and_one_window_at_any_setting(interval, warmup, window):
    params = dataclasses.replace(PARAMS, warmup=warmup, window=window, min_growth_objects=100)
    jitter = noisy(5, 20)
    rate = 400 / window  # four times the least growth
    verdicts = simulate(
        {TYPE: lambda t: 5000 + rate * t + jitter()}, duration=warmup + 2 * window, interval=interval, params=params
    )
    first = next(i for i, v in enumerate(verdicts) if v.suspects) * interval
    assert first <= warmup + window + 3 * interval
    assert first <= time_to_verdict(params, interval) + interval


DEFAULTS = dataclasses.replace(PARAMS, warmup=Params().warmup, window=Params().window)


@pytest.mark.parametrize("fills_for", [120.0, 150.0, 180.0, 200.0])
def test_a_cache_that_fills_for_minutes_past_warmup_is_never_named_at_the_defaults(fills_for):
    jitter = noisy(6, 30)
    verdicts = simulate({TYPE: lambda t: 1000 + 240 * min(t, fills_for) + jitter()}, duration=900, interval=5.0, params=DEFAULTS)
    assert not keys_ever(verdicts)


@pytest.mark.parametrize(("seed", "tau"), [(seed, tau) for seed in range(3) for tau in (30.0, 60.0, 90.0)])
def test_a_cache_that_fills_ever_more_slowly_is_never_named_at_the_defaults(seed, tau):
    """Random keys from a fixed population: each new key is rarer, two thirds of it in tau seconds."""
    jitter = noisy(seed, 50)
    verdicts = simulate(
        {TYPE: lambda t: 1000 + 40_000 * (1 - math.exp(-t / tau)) + jitter()}, duration=1500, interval=5.0, params=DEFAULTS
    )
    assert not keys_ever(verdicts)


def test_suspect_clears_once_growth_has_stopped_for_a_window():
    verdicts = simulate({TYPE: lambda t: 10 * min(t, 200)}, duration=400, interval=1, params=PARAMS)
    assert verdicts[199].suspects
    cleared = next(i for i in range(200, 401) if not verdicts[i].suspects)
    assert 200 + PARAMS.window * 0.9 <= cleared <= 200 + PARAMS.window * 2.1
    assert all(not v.suspects for v in verdicts[cleared:])


def test_suspect_keeps_its_id_and_start_while_it_grows():
    verdicts = simulate({TYPE: lambda t: 10 * t}, duration=200, interval=1, params=PARAMS)
    held = [v.suspects[0] for v in verdicts if v.suspects]
    assert len({s.id for s in held}) == 1
    assert len({s.since for s in held}) == 1
    assert len({s.confirmed_at for s in held}) == 1


# --- process memory ---------------------------------------------------------------------------


def test_rss_growth_python_does_not_explain_is_a_process_suspect():
    rng = random.Random(6)
    signals = {
        ("process", "rss"): lambda t: 50e6 + 100_000 * t + rng.uniform(0, 200_000),
        ("process", "py_blocks"): lambda t: 40_000 + rng.uniform(-300, 300),
        ("type", "dict"): lambda t: 9000 + rng.uniform(-100, 100),
    }
    verdicts = simulate(signals, duration=200, interval=1, params=PARAMS)
    assert [(s.kind, s.key, s.unit) for s in verdicts[-1].suspects] == [("process", "rss", "bytes")]
    assert "not explained" in verdicts[-1].suspects[0].detail


def test_interpreter_blocks_creeping_cannot_explain_fast_rss_growth():
    # Four blocks a second (a free list filling) account for 2 kB/s at most, not 100 kB/s.
    rng = random.Random(7)
    signals = {
        ("process", "rss"): lambda t: 50e6 + 100_000 * t + rng.uniform(0, 200_000),
        ("process", "py_blocks"): lambda t: 40_000 + 4 * t,
    }
    verdicts = simulate(signals, duration=200, interval=1, params=PARAMS)
    assert [(s.kind, s.key) for s in verdicts[-1].suspects] == [("process", "rss")]


def test_interpreter_blocks_growing_in_step_with_rss_explain_it():
    signals = {
        ("process", "rss"): lambda t: 50e6 + 100_000 * t,
        ("process", "py_blocks"): lambda t: 40_000 + 1000 * t,  # up to 512 kB/s of small objects
    }
    verdicts = simulate(signals, duration=200, interval=1, params=PARAMS)
    assert verdicts[-1].suspects == ()


def test_rss_growth_explained_by_growing_objects_is_not_a_process_suspect():
    signals = {
        ("process", "rss"): lambda t: 50e6 + 100_000 * t,
        ("process", "py_blocks"): lambda t: 40_000 + 200 * t,
        ("type", "app.Session"): lambda t: 100 * t,
    }
    verdicts = simulate(signals, duration=200, interval=1, params=PARAMS)
    assert {(s.kind, s.key) for s in verdicts[-1].suspects} == {("type", "app.Session")}


def test_rss_waits_for_a_tracing_window_when_tracing_is_allowed():
    params = Params(**{**PARAMS.__dict__, "can_trace": True})
    verdicts = simulate({("process", "rss"): lambda t: 50e6 + 100_000 * t}, duration=200, interval=1, params=params)
    assert verdicts[-1].suspects == ()
    assert SeriesKey("process", "rss") in verdicts[-1].triggers


def test_rss_growth_that_traced_allocations_do_not_cover_is_flagged_after_a_window():
    params = Params(**{**PARAMS.__dict__, "can_trace": True, "trace_window": 30})
    signals = {
        ("process", "rss"): lambda t: 50e6 + 100_000 * t,
        # Traced bytes since the window opened at t=60: almost nothing.
        ("process", "traced"): lambda t: None if t < 60 else 1000 + 10 * (t - 60),
    }
    verdicts = simulate(signals, duration=200, interval=1, params=params)
    assert [(s.kind, s.key) for s in verdicts[-1].suspects] == [("process", "rss")]


# --- sites ------------------------------------------------------------------------------------


def test_site_growing_through_a_tracing_window_is_flagged_while_tracing():
    params = Params(**{**PARAMS.__dict__, "can_trace": True, "trace_window": 40})
    site = ("site", "app/views.py:42")
    signals = {
        ("type", "app.Session"): lambda t: 100 * t,
        site: lambda t: None if t < 60 else 20_000 * (t - 60),
    }
    verdicts = simulate(signals, duration=120, interval=1, params=params, tracing=lambda t: t >= 60)
    assert ("site", "app/views.py:42") in {(s.kind, s.key) for s in verdicts[-1].suspects}


def test_untracked_bytes_growth_names_its_site_in_the_first_tracing_window():
    # Payloads over 512 bytes go to malloc: RSS grows, interpreter blocks stay flat, no type
    # grows. The tracing window explains RSS by traced bytes; that growth still counts as
    # lasting, so the window names the site rather than waiting for a later one.
    params = Params(**{**PARAMS.__dict__, "can_trace": True, "trace_window": 40})
    rng = random.Random(11)
    site = ("site", "app/upload.py:12")
    signals = {
        ("process", "rss"): lambda t: 50e6 + 100_000 * t + rng.uniform(0, 100_000),
        ("process", "py_blocks"): lambda t: 40_000 + rng.uniform(-300, 300),
        ("process", "traced"): lambda t: None if t < 60 else 100_000 * (t - 60),
        site: lambda t: None if t < 60 else 100_000 * (t - 60),
    }
    verdicts = simulate(signals, duration=99, interval=1, params=params, tracing=lambda t: 60 <= t < 100)
    assert keys_ever(verdicts, "site") == {"app/upload.py:12"}
    assert keys_ever(verdicts, "process") == set()


def test_site_turning_over_a_bounded_structure_is_not_flagged():
    params = Params(**{**PARAMS.__dict__, "can_trace": True, "trace_window": 40})
    # Bytes allocated since the window opened and still alive: a bounded LRU replacing its
    # entries rises quickly, then levels off at the cache's size.
    signals = {
        ("type", "app.Session"): lambda t: 100 * t,
        ("site", "app/cache.py:7"): lambda t: None if t < 60 else 2e6 * (1 - math.exp(-(t - 60) / 6)),
    }
    verdicts = simulate(signals, duration=100, interval=1, params=params, tracing=lambda t: t >= 60)
    assert keys_ever(verdicts, "site") == set()


CPU = ("process", "cpu_seconds")


def test_a_leak_whose_load_stops_is_held_until_its_memory_is_released():
    """Load (and CPU) stops at 200 s and the leaked objects stay: the suspect is held, growth 0,
    for as long as they are; released at 500 s, it clears."""
    verdicts = simulate(
        {TYPE: lambda t: 10 * min(t, 200) if t < 500 else 0.0, CPU: lambda t: 0.5 * min(t, 200) + 0.001 * t},
        duration=600,
        interval=1,
        params=PARAMS,
    )
    assert verdicts[199].suspects[0].state == "growing"
    held = verdicts[450].suspects
    assert [(s.key, s.state, s.growth_per_second) for s in held] == [(TYPE[1], "held", 0.0)]
    assert held[0].current - held[0].baseline >= 1500, "it still holds what it leaked"
    assert all(v.suspects and v.suspects[0].id == held[0].id for v in verdicts[200:500])
    assert not verdicts[-1].suspects


def test_a_structure_that_fills_while_the_load_goes_on_is_cleared_not_held():
    verdicts = simulate(
        {TYPE: lambda t: 10 * min(t, 200), CPU: lambda t: 0.5 * t},
        duration=400,
        interval=1,
        params=PARAMS,
    )
    assert verdicts[199].suspects
    cleared = next(i for i in range(200, 401) if not verdicts[i].suspects)
    assert cleared <= 200 + PARAMS.window * 2.1


def test_a_held_leak_grows_again_when_its_load_comes_back():
    verdicts = simulate(
        {TYPE: lambda t: 10 * (min(t, 200) + max(0.0, t - 400)), CPU: lambda t: 0.5 * (min(t, 200) + max(0.0, t - 400))},
        duration=600,
        interval=1,
        params=PARAMS,
    )
    assert verdicts[350].suspects[0].state == "held"
    again = verdicts[-1].suspects[0]
    assert again.state == "growing" and again.growth_per_second > 5
    assert again.since == verdicts[199].suspects[0].since, "the same leak, from where it began"
