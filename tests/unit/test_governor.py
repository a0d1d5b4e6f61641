"""The cost governor's bookkeeping: interval stretching and the tracing credit."""

from __future__ import annotations

import dataclasses
import logging
import re

import pytest

from leakwatch.config import Config
from leakwatch.governor import CORE_SHARE_FLOOR, CPU_SMOOTHING, MAX_INTERVAL, TARGET_SHARE, WINDOW_TICKS, Governor
from leakwatch.testing import FakeClock
from leakwatch.watcher import Watcher


def config(**options: object) -> Config:
    return Config.from_options(env={}, **options)


def governed(**defaults: float) -> Config:
    """A config with these time options left to the governor, as defaults are (not set by the user)."""
    return dataclasses.replace(config(cpu_budget=0.01), **defaults)


def test_a_cheap_tick_keeps_the_configured_pace():
    g = Governor(config(interval=5, window=300, cpu_budget=0.01), now=0.0)
    for _ in range(50):
        assert not g.after_tick(0.01, objects=100_000)  # 0.2% of a core at 5 s
    budget = g.snapshot(100.0)
    assert (budget.interval, budget.window) == (5.0, 300.0)
    assert budget.cpu_spend == pytest.approx(0.002)


def test_an_expensive_tick_stretches_the_interval_to_the_budget_and_the_window_past_sixteen_ticks(caplog):
    g = Governor(governed(interval=5, window=300), now=0.0)
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        for _ in range(40):
            g.after_tick(0.4, objects=3_000_000)  # a 3M-object census: 80 s at half of 1%
    assert g.interval == pytest.approx(0.4 / (TARGET_SHARE * 0.01), rel=0.1)
    assert g.window == pytest.approx(WINDOW_TICKS * g.interval)
    assert g.growth_scale == pytest.approx(g.window / 300)
    assert g.snapshot(1000.0).cpu_spend <= 0.01
    stretched = [r.getMessage() for r in caplog.records if "interval is now" in r.getMessage()]
    assert len(stretched) == 1, "leaving the default pace is logged once"
    assert "3,000,000 objects" in stretched[0] and "cpu_budget 1%" in stretched[0]


def test_the_interval_comes_back_when_ticks_get_cheap_again(caplog):
    g = Governor(governed(interval=5, window=300), now=0.0)
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        for _ in range(30):
            g.after_tick(0.2, objects=1)
        assert g.interval > 15
        for _ in range(60):
            g.after_tick(0.001, objects=1)
    assert (g.interval, g.window) == (5.0, 300.0)
    moves = [r.getMessage() for r in caplog.records if "interval is now" in r.getMessage()]
    assert len(moves) == 2, "one line when it stretched, one when it came back"
    stretched, shortened = (float(re.search(r"interval is now ([0-9.]+) s", m).group(1)) for m in moves)
    assert shortened < stretched


def test_small_changes_in_tick_cost_do_not_move_the_interval():
    g = Governor(governed(interval=5, window=300), now=0.0)
    for _ in range(30):
        g.after_tick(0.2, objects=1)
    settled = g.interval
    for cpu in (0.21, 0.19, 0.205, 0.195) * 10:
        g.after_tick(cpu, objects=1)
    assert g.interval == settled


def test_a_process_with_half_a_core_gets_half_the_budget(caplog):
    alone = Governor(governed(interval=5, window=300), now=0.0)
    shared = Governor(governed(interval=5, window=300), now=0.0)
    ran = waited = 0.0
    shared.observe_contention((ran, waited))
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        for _ in range(30):
            ran, waited = ran + 10.0, waited + 10.0  # as long on the run queue as on the core
            shared.observe_contention((ran, waited))
            shared.after_tick(0.2, objects=1_000_000)
            alone.after_tick(0.2, objects=1_000_000)
    assert shared.core_share == pytest.approx(0.5)
    assert shared.interval == pytest.approx(2 * alone.interval, rel=0.15)
    budget = shared.snapshot(1000.0)
    assert budget.core_share == pytest.approx(0.5)
    assert budget.cpu_spend <= 0.01 * 0.5
    stretched = [r.getMessage() for r in caplog.records if "interval is now" in r.getMessage()]
    assert sum("of the 50% of a core this process gets" in m for m in stretched) == 1  # and one from `alone`


def test_idle_spans_and_missing_scheduler_statistics_leave_the_share_alone():
    g = Governor(config(interval=5, window=300, cpu_budget=0.01), now=0.0)
    g.observe_contention(None)  # not Linux: nothing to go on
    g.observe_contention((1.0, 0.0))
    for step in range(1, 10):
        g.observe_contention((1.0 + 0.004 * step, 0.004 * step))  # an idle process: milliseconds
    assert g.core_share == 1.0
    g.observe_contention((1.0 + 0.08, 0.08))  # the idle spans add up to one worth reading
    assert g.core_share == pytest.approx(0.5)
    g.observe_contention((2.0, 0.0))  # counters that went back (threads ended): ignored
    assert g.core_share == pytest.approx(0.5)
    g.observe_contention((2.2, 0.0))  # and counted from that reading on
    assert g.core_share == pytest.approx(0.5 + CPU_SMOOTHING * (1.0 - 0.5))


def test_the_share_never_shrinks_the_budget_past_its_floor():
    g = Governor(config(interval=5, window=300, cpu_budget=0.01), now=0.0)
    g.observe_contention((0.0, 0.0))
    g.observe_contention((1.0, 99.0))
    assert g.core_share == CORE_SHARE_FLOOR
    assert g.budget == pytest.approx(0.01 * CORE_SHARE_FLOOR)


def traced_governor(**options: object) -> Governor:
    """Tracing left to the governor (trace_window a default of 20 s), slowdown measured."""
    g = Governor(dataclasses.replace(config(interval=1, window=60, **options), trace_window=20.0), now=0.0)
    g.slowdown = 11.0  # a traced second costs the application 10 seconds
    return g


def spend_the_first_window(g: Governor) -> None:
    """The credit starts full: spend that first whole window (0 s to 20 s), leaving what 20 s earn."""
    assert g.affordable_window(0.0, shortest=1.0) == 20.0
    g.window_opened(0.0, ours=True)
    g.window_closed(20.0)
    assert g.snapshot(20.0).trace_credit == pytest.approx(200 + g.trace_rate * 20 - 10 * 20)


def test_the_first_whole_window_is_paid_for_up_front():
    g = traced_governor(trace_budget=0.05)
    assert g.affordable_window(0.0, shortest=20.0) == 20.0


def test_no_window_until_the_credit_pays_for_one_tick_of_it(caplog):
    g = traced_governor(trace_budget=0.05)
    spend_the_first_window(g)
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        assert g.affordable_window(100.0, shortest=1.0) == 0.0  # 5 s of credit; one traced second costs 10
        assert g.affordable_window(150.0, shortest=1.0) == 0.0
    assert g.snapshot(150.0).windows_deferred == 1, "one wait counts once"
    deferred = [r.getMessage() for r in caplog.records if "next tracing window" in r.getMessage()]
    assert len(deferred) == 1 and "11.0x" in deferred[0]
    # 10 s of credit, and 0.05 s more each traced second: about one second of tracing
    assert g.affordable_window(200.0, shortest=1.0) == pytest.approx(10 / (10 - 0.05))


def test_tracing_never_costs_more_than_the_budget_of_the_time_run_so_far():
    g = traced_governor(trace_budget=0.05)
    now, open_until = 0.0, None
    while now < 20_000:
        now += 1.0
        if open_until is not None and now >= open_until:
            g.window_closed(now)
            open_until = None
        if open_until is None:
            length = g.affordable_window(now, shortest=1.0)
            if length:
                g.window_opened(now, ours=True)
                open_until = now + length
        # The first window is paid up front; past that, never more than the budget accrued.
        assert g.snapshot(now).trace_spend * now <= 0.05 * now + 10 * 20 + 1e-6
    assert 0.04 < g.snapshot(now).trace_spend <= 0.05 + 10 * 20 / now, "the budget is used, not just respected"


def test_a_process_on_half_a_core_earns_tracing_credit_at_half_the_rate():
    alone, shared = traced_governor(trace_budget=0.05), traced_governor(trace_budget=0.05)
    shared.observe_contention((0.0, 0.0))
    shared.observe_contention((10.0, 10.0))
    for g in (alone, shared):
        spend_the_first_window(g)
        g.affordable_window(120.0, shortest=1.0)
    assert alone.snapshot(120.0).trace_credit == pytest.approx(1.0 + 5.0)
    assert shared.snapshot(120.0).trace_credit == pytest.approx(0.5 + 2.5)


def test_credit_is_capped_at_one_whole_window():
    g = traced_governor(trace_budget=0.05)
    assert g.affordable_window(1e6, shortest=1.0) == 20.0  # days of uptime buy one window, not days of tracing
    assert g.snapshot(1e6).trace_credit == pytest.approx(10 * 20)


def test_tracing_someone_else_started_costs_nothing():
    g = traced_governor(trace_budget=0.05)
    g.window_opened(0.0, ours=False)
    g.window_closed(1000.0)
    assert g.snapshot(1000.0).trace_spend == 0.0


def test_a_large_trace_budget_lets_windows_run_back_to_back():
    g = traced_governor(trace_budget=100)
    assert g.affordable_window(1.0, shortest=1.0) == 20.0


def test_growth_no_type_explains_waits_for_a_whole_window():
    g = traced_governor(trace_budget=0.05)
    spend_the_first_window(g)
    assert g.affordable_window(1000.0, shortest=20) == 0.0  # 50 s of credit; a whole 20 s window needs 199
    assert g.affordable_window(1000.0, shortest=1.0) == pytest.approx(50 / 9.95)  # enough to attribute types
    g = traced_governor(trace_budget=0.05)
    spend_the_first_window(g)
    assert g.affordable_window(4020.0, shortest=20) == 20.0


def test_a_trace_window_the_user_set_is_the_length_of_every_window():
    g = Governor(config(interval=1, window=60, trace_window=20, trace_budget=0.05), now=0.0)
    g.slowdown = 11.0
    assert g.affordable_window(0.0, shortest=1.0) == 20.0  # not a short attribution window
    g.window_opened(0.0, ours=True)
    g.window_closed(20.0)
    assert g.affordable_window(1000.0, shortest=1.0) == 0.0  # 50 s of credit pays for 5 s, not for 20
    assert g.affordable_window(4020.0, shortest=1.0) == 20.0


def test_an_application_that_mostly_waits_pays_for_the_little_it_computes():
    g = traced_governor(trace_budget=0.05)
    g.observe_process(0.0, process_cpu=0.0)
    g.observe_process(100.0, process_cpu=10.0)  # 10% of a core
    assert g.busy == pytest.approx(0.1)
    assert g.trace_cost == pytest.approx(10 * 0.1)
    assert g.affordable_window(100.0, shortest=1.0) > 0, "5 s of credit pays for a traced second at 10% busy"


def test_leakwatchs_own_ticks_and_its_windows_do_not_count_as_the_applications_work():
    g = traced_governor(trace_budget=0.05)
    g.observe_process(0.0, process_cpu=0.0)
    g.after_tick(2.0, objects=1)  # our own tick: 2 CPU seconds
    g.observe_process(100.0, process_cpu=2.0 + 5.0)
    assert g.busy == pytest.approx(0.05)
    g.window_opened(100.0, ours=True)
    g.window_closed(110.0)
    g.observe_process(110.0, process_cpu=7.0 + 10.0)  # tracing itself made the app look busy
    assert g.busy == pytest.approx(0.05)
    g.observe_process(210.0, process_cpu=17.0 + 5.0)
    assert g.busy == pytest.approx(0.05)


def test_an_idle_application_is_still_charged_for_a_little_work():
    g = traced_governor()
    g.observe_process(0.0, process_cpu=0.0)
    g.observe_process(100.0, process_cpu=0.0)
    assert g.busy == 0.0 and g.trace_cost > 0


def test_the_interval_stops_at_its_ceiling_and_the_overspend_is_said(caplog):
    g = Governor(governed(interval=5, window=300), now=0.0)
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        for _ in range(20):
            g.after_tick(3.0, objects=25_000_000)  # 300 s at 1%
    assert g.interval == MAX_INTERVAL
    assert g.snapshot(0.0).cpu_spend == pytest.approx(3.0 / MAX_INTERVAL, rel=0.05)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "more than cpu_budget 1% allows" in warned[0].getMessage()


@pytest.mark.parametrize("option", ["interval", "window"])
def test_a_pace_the_user_set_is_kept_over_budget_and_said_once(caplog, option):
    given = {"interval": 5.0} if option == "interval" else {"window": 300.0}
    g = Governor(config(cpu_budget=0.01, **given), now=0.0)
    with caplog.at_level(logging.INFO, logger="leakwatch.governor"):
        for _ in range(40):
            g.after_tick(0.4, objects=3_000_000)  # 8% of a core at 5 s
    budget = g.snapshot(100.0)
    if option == "interval":
        assert (budget.interval, budget.window) == (5.0, 240.0)
    else:  # the interval may stretch until the window holds no fewer than WINDOW_TICKS samples
        assert (budget.interval, budget.window) == (300.0 / WINDOW_TICKS, 300.0)
    assert budget.cpu_spend > 0.01, "the overspend is exported, not hidden"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert f"the {option} option" in warned[0] and "is used as given" in warned[0] and "cpu_budget 1%" in warned[0]
    assert "% of a core" in warned[0]


class Held:
    """Instances a test keeps alive: a real leak for the watcher to find."""


def test_a_watcher_uses_the_time_options_the_user_set_whatever_they_cost():
    """Ticks here cost far more than a 0.01% budget allows at a 1 s interval; the governor would
    stretch every default, and must change none of the four options set here."""
    clock = FakeClock()
    given = {"interval": 1.0, "window": 10.0, "warmup": 2.0, "trace_window": 4.0}
    watcher = Watcher(clock=clock, cpu_budget=0.0001, trace_budget=0.05, log_suspects=False, **given)
    held: list[Held] = []
    lengths = set()
    try:
        for _ in range(40):
            held.extend(Held() for _ in range(200))
            report = watcher.sample_now()
            assert (report.budget.interval, report.budget.window) == (1.0, 10.0)
            sites = watcher._sampler.sites
            if sites is not None and sites.active:
                lengths.add(watcher._pipeline.tracing.length)
            clock.advance(1.0)
        assert report.budget.cpu_spend > 0.0001, "over budget, and it shows"
        assert watcher._pipeline.params.warmup == 2.0 and watcher._pipeline.params.window == 10.0
        assert lengths == {4.0}, "every tracing window is as long as the trace_window option"
        assert any(s.key.endswith("Held") for s in report.suspects)
    finally:
        watcher.stop()
