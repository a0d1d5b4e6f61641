"""The sampler on its own: every enabled probe read into one sample; a probe that fails costs
its own values and nothing else."""

from __future__ import annotations

import logging

from leakwatch.config import Config
from leakwatch.sampler import Sampler
from leakwatch.testing import FakeClock


def test_one_sample_holds_every_enabled_probe_and_its_time():
    clock = FakeClock(50.0)
    sampler = Sampler(Config.from_options(env={}), clock)
    sample = sampler.sample()
    assert sample.t == 50.0
    assert sample.values["type"]["dict"] > 0 and sample.values["process"]["rss"] > 0
    assert set(sample.durations) == {"census", "process"}
    assert sample.errors == () and sampler.samples == 1
    assert sampler.runs == {"census": 1, "process": 1}


def test_disabled_probes_are_not_run():
    sampler = Sampler(Config.from_options(env={}, census=False, tracemalloc="off"), FakeClock())
    assert sampler.census is None and sampler.sites is None
    assert set(sampler.sample().values) == {"process"}


def test_a_failing_probe_is_logged_once_with_its_traceback_and_counted_each_time(monkeypatch, caplog):
    sampler = Sampler(Config.from_options(env={}), FakeClock())
    process = sampler.process
    assert process is not None

    def denied(*args: object) -> dict[str, float]:
        raise PermissionError("psutil: access denied")

    monkeypatch.setattr(process, "read", denied)
    with caplog.at_level(logging.DEBUG, logger="leakwatch.sampler"):
        first = sampler.sample()
        second = sampler.sample()
    assert first.errors == second.errors == ("process",)
    assert "process" not in second.values and second.values["type"]["dict"] > 0
    assert sampler.errors == {"process": 2}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is not None
    assert "probe 'process' failed; the other probes go on" in warnings[0].getMessage()
