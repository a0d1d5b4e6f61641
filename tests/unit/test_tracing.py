"""The trace scheduler on a fake clock, with the real site probe and governor: which growth gets
a tracing window, how long, and when the next one may open."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from leakwatch.config import Config
from leakwatch.detector import SITE_TRIGGER_AGE, Verdict
from leakwatch.governor import Governor
from leakwatch.history import History
from leakwatch.model import SeriesKey
from leakwatch.probes.sites import SiteProbe
from leakwatch.testing import FakeClock
from leakwatch.tracing import TRACE_COOLDOWN, WINDOW_SAMPLES, TraceScheduler

WINDOW = 240.0
TYPE = SeriesKey("type", "app.Session")
BLOCKS = SeriesKey("process", "py_blocks")


@pytest.fixture(autouse=True)
def no_tracing_left() -> Iterator[None]:
    assert not tracemalloc.is_tracing()
    yield
    tracemalloc.stop()


def scheduler(clock: FakeClock, **options: object) -> tuple[TraceScheduler, SiteProbe, Governor]:
    config = Config.from_options(env={}, **options)
    sites = SiteProbe()
    governor = Governor(config, clock())
    governor.slowdown = 2.0  # measured once in a real watcher; fixed here so the credit is known
    return TraceScheduler(config, sites, governor, History()), sites, governor


def pending_since(key: SeriesKey, first: float, now: float) -> Verdict:
    return Verdict(pending={key: (first, now)}, triggers=(key,))


def test_growth_that_has_not_lasted_half_a_window_gets_no_tracing():
    clock = FakeClock()
    tracing, sites, _ = scheduler(clock)
    young = clock() - SITE_TRIGGER_AGE * WINDOW + 10.0
    tracing.steer([BLOCKS], pending_since(BLOCKS, young, clock()), WINDOW, clock(), threaded=False)
    assert not sites.active and tracing.planned_at is None and tracing.state == "idle"


def test_growth_no_type_explains_gets_a_whole_window_with_ticks_enough_to_judge_sites():
    clock = FakeClock()
    # A budget that always pays: only the rest after a window holds the next one back.
    tracing, sites, _ = scheduler(clock, trace_budget=1.0)
    old = clock() - SITE_TRIGGER_AGE * WINDOW
    tracing.steer([BLOCKS], pending_since(BLOCKS, old, clock()), WINDOW, clock(), threaded=False)
    assert sites.active and tracing.state == "window"
    trace_window = Config.from_options(env={}).trace_window
    assert tracing.length == trace_window
    assert tracing.gap(5.0) == min(5.0, trace_window / WINDOW_SAMPLES)
    assert tracing.due(clock() + 100.0) == clock() + trace_window, "the thread wakes when the window ends"

    clock.advance(trace_window)
    tracing.steer([BLOCKS], pending_since(BLOCKS, old, clock()), WINDOW, clock(), threaded=False)
    assert not sites.active and not tracemalloc.is_tracing(), "closed on the tick at its end"
    assert tracing.gap(5.0) == 5.0
    # It rests twice the window's length before the next.
    clock.advance(TRACE_COOLDOWN * trace_window - 1.0)
    tracing.steer([BLOCKS], pending_since(BLOCKS, old, clock()), WINDOW, clock(), threaded=False)
    assert not sites.active
    clock.advance(1.0)
    tracing.steer([BLOCKS], pending_since(BLOCKS, old, clock()), WINDOW, clock(), threaded=False)
    assert sites.active
    tracing.close()
    assert not tracemalloc.is_tracing()


def test_blocks_growth_waits_while_a_younger_growing_type_may_explain_it():
    clock = FakeClock()
    tracing, sites, governor = scheduler(clock, trace_budget=1.0)
    lasted, young = clock() - WINDOW, clock() - SITE_TRIGGER_AGE * WINDOW + 10.0
    both = Verdict(pending={BLOCKS: (lasted, clock()), TYPE: (young, clock())}, triggers=(BLOCKS, TYPE))
    tracing.steer([BLOCKS, TYPE], both, WINDOW, clock(), threaded=True)
    assert not sites.active and tracing.planned_at is None, "no whole window before the type is attributed"
    clock.advance(10.0)
    both = Verdict(pending={BLOCKS: (lasted, clock()), TYPE: (young, clock())}, triggers=(BLOCKS, TYPE))
    tracing.steer([BLOCKS, TYPE], both, WINDOW, clock(), threaded=True)
    assert tracing.planned_at is not None and tracing.length < governor.interval, "the type's short window"
    tracing.open_planned(clock())
    clock.advance(tracing.length)
    tracing.steer([BLOCKS], pending_since(BLOCKS, lasted, clock()), WINDOW, clock(), threaded=True)
    assert not sites.active
    # Its sites known, the blocks it leaves unexplained get their whole window after the rest.
    clock.advance(TRACE_COOLDOWN * tracing.length)
    tracing.steer([BLOCKS], pending_since(BLOCKS, lasted, clock()), WINDOW, clock(), threaded=True)
    assert sites.active and tracing.length == Config.from_options(env={}).trace_window
    tracing.close()


def test_the_next_whole_window_waits_for_the_credit_the_last_one_spent():
    clock = FakeClock()
    tracing, sites, governor = scheduler(clock)
    old = clock() - WINDOW
    tracing.steer([BLOCKS], pending_since(BLOCKS, old, clock()), WINDOW, clock(), threaded=False)
    assert sites.active
    clock.advance(tracing.length)
    tracing.steer([BLOCKS], pending_since(BLOCKS, old, clock()), WINDOW, clock(), threaded=False)
    clock.advance(TRACE_COOLDOWN * tracing.length)
    tracing.steer([BLOCKS], pending_since(BLOCKS, old, clock()), WINDOW, clock(), threaded=False)
    assert not sites.active, "the default 5% budget has not earned a whole window back yet"
    assert governor.snapshot(clock()).windows_deferred == 1


def test_a_type_to_attribute_gets_a_window_just_before_the_next_tick_on_the_thread():
    clock = FakeClock()
    tracing, sites, governor = scheduler(clock)
    old = clock() - WINDOW
    tracing.steer([TYPE], pending_since(TYPE, old, clock()), WINDOW, clock(), threaded=True)
    assert not sites.active, "nothing traces until the planned moment"
    assert tracing.planned_at == clock() + governor.interval - tracing.length
    assert tracing.length == min(1.0, governor.interval / 2)
    assert tracing.due(clock() + governor.interval) == tracing.planned_at
    clock.advance(governor.interval - tracing.length)
    tracing.open_planned(clock())
    assert sites.active and tracing.planned_at is None


def test_by_hand_ticks_trace_attribution_windows_of_whole_intervals():
    clock = FakeClock()
    tracing, sites, governor = scheduler(clock)
    tracing.steer([TYPE], pending_since(TYPE, clock() - WINDOW, clock()), WINDOW, clock(), threaded=False)
    assert sites.active and tracing.length == governor.interval
    tracing.close()


def test_the_applications_own_tracing_is_read_and_never_stopped():
    clock = FakeClock()
    tracing, sites, _ = scheduler(clock)
    tracemalloc.start(1)
    assert tracing.state == "external"
    tracing.steer([BLOCKS], pending_since(BLOCKS, clock() - WINDOW, clock()), WINDOW, clock(), threaded=False)
    assert sites.active
    clock.advance(tracing.length)
    tracing.steer([BLOCKS], pending_since(BLOCKS, clock() - WINDOW, clock()), WINDOW, clock(), threaded=False)
    assert tracemalloc.is_tracing(), "the application's tracing stays on"


def test_tracing_off_and_always_are_left_to_the_watcher():
    clock = FakeClock()
    config = Config.from_options(env={}, tracemalloc="off")
    off = TraceScheduler(config, None, Governor(config, clock()), History())
    off.steer([BLOCKS], pending_since(BLOCKS, clock() - WINDOW, clock()), WINDOW, clock(), threaded=False)
    assert off.state == "off"
    always, sites, _ = scheduler(clock, tracemalloc="always")
    always.open(clock())
    clock.advance(10 * WINDOW)
    always.steer([], Verdict(), WINDOW, clock(), threaded=False)
    assert sites.active, "an always-on window is never closed by the scheduler"
    always.close()
