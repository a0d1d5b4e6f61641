"""The watcher's cycle driven by hand on a fake clock (no thread): what a user sees tick by
tick at the defaults, the report file, and what a failing piece costs."""

from __future__ import annotations

import json
import logging
import os

from leakwatch.detector import CONFIRM
from leakwatch.model import Sample
from leakwatch.testing import FakeClock
from leakwatch.watcher import Watcher


class Record:
    """What the leak in these tests keeps: a real object per request, never released."""


def test_at_the_defaults_a_steady_leak_is_named_when_the_report_said_it_would_be():
    clock = FakeClock()
    watcher = Watcher(clock=clock, log_suspects=False, tracemalloc="off")
    kept: list[Record] = []
    try:
        report = watcher.sample_now()
        promised = report.verdict_after
        assert not report.judged and report.summary().startswith("no verdict yet: 1 samples")
        named_at = None
        while report.watched < promised:
            kept.extend(Record() for _ in range(200))
            clock.advance(report.budget.interval)
            report = watcher.sample_now()
            if report.suspects and named_at is None:
                named_at = report.watched
            if not report.suspects:
                assert "no verdict yet" in report.summary()
        # Not before warm-up and the confirmation hold, and no later than the report promised.
        config = watcher.config
        assert named_at is not None and config.warmup + CONFIRM * config.window <= named_at <= promised
        names = [s.key for s in report.suspects]
        assert any(name.endswith("Record") for name in names), report.summary()
        assert report.summary().startswith(f"{len(names)} suspected leak(s)")
        assert not set(report.candidates) & {s.series for s in report.suspects}, "a suspect is no candidate any more"
    finally:
        watcher.stop()


def test_a_clean_run_says_no_leak_once_judged_and_not_before():
    clock = FakeClock()
    watcher = Watcher(clock=clock, log_suspects=False, tracemalloc="off", interval=1.0, warmup=2.0, window=20.0)
    try:
        report = watcher.sample_now()
        while not report.judged:
            assert report.summary().startswith("no verdict yet")
            clock.advance(1.0)
            report = watcher.sample_now()
        assert report.summary().startswith("no leak suspected") and report.suspects == ()
    finally:
        watcher.stop()


def test_each_tick_leaves_its_report_in_the_report_file(tmp_path):
    clock = FakeClock()
    path = tmp_path / "report-{pid}.json"
    watcher = Watcher(clock=clock, report_file=str(path), log_suspects=False)
    written = tmp_path / f"report-{os.getpid()}.json"
    try:
        for samples in (1, 2, 3):
            watcher.sample_now()
            assert json.loads(written.read_text())["samples"] == samples
            clock.advance(5.0)
        assert [p.name for p in tmp_path.iterdir()] == [written.name], "no temporary file is left behind"
    finally:
        watcher.stop()


def test_a_report_file_that_cannot_be_written_is_counted_and_told_once(tmp_path, caplog):
    clock = FakeClock()
    watcher = Watcher(clock=clock, report_file=str(tmp_path / "missing" / "report.json"), log_suspects=False)
    try:
        with caplog.at_level(logging.DEBUG, logger="leakwatch.watcher"):
            for _ in range(4):
                watcher.sample_now()
                clock.advance(5.0)
        report = watcher.sample_now()
        assert report.errors.get("report_file") == 4, report.errors  # the fifth is counted with the next tick
        told = [r for r in caplog.records if "report_file failed" in r.getMessage()]
        assert [r.levelno for r in told] == [logging.WARNING] + [logging.DEBUG] * 3
        assert told[0].exc_info and not any(r.exc_info for r in told[1:])
        assert not list(tmp_path.iterdir()), "no temporary file is left behind"
    finally:
        watcher.stop()


def test_a_failing_probe_costs_its_own_values_only(monkeypatch):
    clock = FakeClock()
    watcher = Watcher(clock=clock, log_suspects=False)
    census = watcher._sampler.census
    assert census is not None

    def broken(*args: object) -> dict[str, float]:
        raise MemoryError("no room for the list of every object")

    monkeypatch.setattr(census, "read", broken)
    try:
        report = watcher.sample_now()
        clock.advance(5.0)
        report = watcher.sample_now()
        assert report.errors == {"census": 2}
        assert report.process["rss"] > 0, "the process probe still ran"
        assert report.samples == 2 and report.types == 0
    finally:
        watcher.stop()


def test_a_failing_tick_is_counted_and_the_next_one_runs(monkeypatch):
    clock = FakeClock()
    watcher = Watcher(clock=clock, log_suspects=False)
    sampler = watcher._sampler
    real = sampler.sample
    calls = {"n": 0}

    def flaky(*args: object, **kwargs: object) -> Sample:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a tick that fails")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sampler, "sample", flaky)
    try:
        for _ in range(3):
            watcher._tick_safely()  # what the thread runs each tick
            clock.advance(5.0)
        report = watcher.report()
        assert report.errors.get("watcher") == 1 and report.samples == 2
    finally:
        watcher.stop()
