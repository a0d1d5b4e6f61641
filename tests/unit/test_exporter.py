"""The Prometheus collector, on hand-built reports: names, labels, caps and truncation."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from leakwatch.config import Config
from leakwatch.costs import CostMeter
from leakwatch.exporters.log import log_changes
from leakwatch.exporters.prometheus import (
    MASTER_ONLY,
    MAX_LABEL_LENGTH,
    METRICS,
    LeakwatchCollector,
    exported_suspects,
    exposed_bytes_bound,
    exposed_series_bound,
    label_of,
    truncate,
)
from leakwatch.model import Report, Retained, SeriesKey, Suspect
from leakwatch.testing import FixedReport

HOLDS = Retained(bytes=10_240_000.0, error_bytes=51_200.0, samples=32, seconds=0.02, measured_at=1.7e9)


def suspect(kind: str, key: str, rate: float, current: float = 1000.0) -> Suspect:
    unit = "objects" if kind == "type" else "bytes"
    retained = HOLDS if kind != "process" else None
    return Suspect(
        kind=kind, key=key, unit=unit, current=current, growth_per_second=rate, since=1.7e9, confidence=0.999, retained=retained
    )


def scrape(report: Report, **options: object) -> dict[str, list]:
    """Collect through a real registry and parse the text back: {family name: samples}."""
    registry = CollectorRegistry()
    registry.register(LeakwatchCollector(FixedReport(Config.from_options(env={}, **options), report)))
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def sample_report(**fields: object) -> Report:
    meter = CostMeter()
    meter.add({"census": 0.004, "process": 0.0001, "detect": 0.0003}, 0.003)
    meter.add({"census": 0.2, "process": 0.0001, "detect": 0.0003}, 0.15)
    base = Report(
        time=1.7e9,
        samples=2,
        suspects=(suspect("type", "app.Session", 3.0), suspect("site", "app/cache.py:12", 2048.0)),
        candidates=(SeriesKey("type", "app.Session"), SeriesKey("type", "bytes"), SeriesKey("site", "app/x.py:3")),
        tracing="window",
        errors={"census": 1},
        series=10,
        history_bytes=4096,
        top={"type": (("dict", 500.0), ("app.Session", 300.0)), "site": (("app/cache.py:12", 65536.0),)},
        types=42,
        process={"rss": 5e7, "uss": 4e7, "py_blocks": 1e5, "trace_overhead": 12345.0},
        memory_limit=2.0**30,
        costs=meter.snapshot({"census": 2, "process": 2}),
    )
    return dataclasses.replace(base, **fields)


def values(samples: list, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in samples if s.name == name}


def test_every_metric_the_collector_emits_is_in_the_table_and_back():
    families = scrape(sample_report())  # text format: an info metric reads back as a gauge
    described = {m.name + ("_info" if m.type == "info" else "") for m in LeakwatchCollector(lambda: None).describe()}
    table = {spec.name.removesuffix("_total") for spec in METRICS}
    assert set(families) == table - MASTER_ONLY and described == table
    for spec in METRICS:
        for s in families.get(spec.name.removesuffix("_total"), ()):
            assert set(s.labels) - {"le"} == set(spec.labels), spec.name


def test_suspects_become_labelled_series_in_their_unit():
    families = scrape(sample_report())
    ids = {s.labels["key"]: s.labels["id"] for s in families["leakwatch_suspect_confidence_ratio"]}
    assert ids == {
        "app.Session": suspect("type", "app.Session", 1).id,
        "app/cache.py:12": suspect("site", "app/cache.py:12", 1).id,
    }
    objects = values(families["leakwatch_suspect_growth_objects_per_second"], "leakwatch_suspect_growth_objects_per_second")
    assert list(objects.values()) == [3.0]
    growth = values(families["leakwatch_suspect_growth_bytes_per_second"], "leakwatch_suspect_growth_bytes_per_second")
    assert list(growth.values()) == [2048.0]
    held = values(families["leakwatch_suspect_retained_bytes"], "leakwatch_suspect_retained_bytes")
    bound = values(families["leakwatch_suspect_retained_error_bytes"], "leakwatch_suspect_retained_error_bytes")
    assert list(held.values()) == [HOLDS.bytes] * 2 and list(bound.values()) == [HOLDS.error_bytes] * 2
    by_kind = values(families["leakwatch_suspects"], "leakwatch_suspects")
    assert by_kind == {(("kind", "type"),): 1, (("kind", "site"),): 1, (("kind", "process"),): 0}
    candidates = values(families["leakwatch_candidates"], "leakwatch_candidates")
    assert candidates[(("kind", "type"),)] == 2 and candidates[(("kind", "site"),)] == 1


def test_suspect_series_are_capped_and_the_rest_counted():
    many = tuple(suspect("type", f"app.T{i}", float(i)) for i in range(30)) + tuple(
        suspect("site", f"app/m.py:{i}", float(i)) for i in range(5)
    )
    families = scrape(sample_report(suspects=many), max_suspect_series=10)
    assert len(families["leakwatch_suspect_confidence_ratio"]) == 10
    assert families["leakwatch_suspects_omitted"][0].value == 25
    kept = {s.labels["key"] for s in families["leakwatch_suspect_confidence_ratio"]}
    # Kinds take turns, so sites are not crowded out by types; fastest first within a kind.
    assert {"app/m.py:4", "app/m.py:3", "app/m.py:2", "app/m.py:1", "app/m.py:0"} <= kept
    assert {"app.T29", "app.T28", "app.T25"} <= kept and "app.T0" not in kept


def test_exported_suspects_never_exceeds_the_cap():
    many = [suspect("type", f"t{i}", i) for i in range(7)] + [suspect("process", "rss", 1.0)]
    for cap in range(1, 10):
        chosen = exported_suspects(many, cap)
        assert len(chosen) == min(cap, len(many))
        assert len({s.id for s in chosen}) == len(chosen)


def test_long_keys_are_cut_keeping_their_end():
    key = "pkg." + "very_long_module_name." * 20 + "Leaky"
    site = "/srv/app/" + "deep/" * 40 + "handlers.py:118"
    report = sample_report(
        suspects=(suspect("type", key, 1.0), suspect("site", site, 1.0)), top={"type": ((key, 9.0),), "site": ((site, 9.0),)}
    )
    families = scrape(report)
    labels = [v for f in families.values() for s in f for k, v in s.labels.items() if k in ("key", "type", "site")]
    assert labels and all(len(v) <= MAX_LABEL_LENGTH for v in labels)
    assert truncate(key).endswith(".Leaky") and truncate(key).startswith("...")
    assert truncate(site).endswith("/handlers.py:118")
    assert truncate("short") == "short"


def test_census_top_k_process_memory_and_costs():
    families = scrape(sample_report())
    census = values(families["leakwatch_census_objects"], "leakwatch_census_objects")
    assert census == {(("type", "dict"),): 500.0, (("type", "app.Session"),): 300.0}
    assert families["leakwatch_site_bytes"][0].value == 65536.0
    assert families["leakwatch_process_uss_bytes"][0].value == 4e7
    assert families["leakwatch_memory_limit_bytes"][0].value == 2.0**30
    assert families["leakwatch_tracing_active"][0].value == 1.0
    assert families["leakwatch_tracemalloc_overhead_bytes"][0].value == 12345.0
    errors = values(families["leakwatch_errors"], "leakwatch_errors_total")
    assert errors == {(("probe", "census"),): 1, (("probe", "process"),): 0, (("probe", "watcher"),): 0}
    runs = values(families["leakwatch_samples"], "leakwatch_samples_total")
    assert runs == {(("probe", "census"),): 2, (("probe", "process"),): 2}
    assert families["leakwatch_cpu_seconds"][0].value == pytest.approx(0.153)
    buckets = values(families["leakwatch_sample_duration_seconds"], "leakwatch_sample_duration_seconds_bucket")
    census_buckets = {dict(k)["le"]: v for k, v in buckets.items() if dict(k)["phase"] == "census"}
    assert census_buckets["0.001"] == 0 and census_buckets["0.005"] == 1 and census_buckets["0.25"] == 2
    assert census_buckets["+Inf"] == 2
    counts = values(families["leakwatch_sample_duration_seconds"], "leakwatch_sample_duration_seconds_count")
    assert counts[(("phase", "census"),)] == 2


def test_optional_series_are_absent_rather_than_zero():
    unmeasured = tuple(dataclasses.replace(s, retained=None) for s in sample_report().suspects)
    families = scrape(
        sample_report(memory_limit=0.0, process={"rss": 1e7, "py_blocks": 10.0}, tracing="idle", top={}, suspects=unmeasured)
    )
    assert families["leakwatch_suspect_retained_bytes"] == []
    assert families["leakwatch_memory_limit_bytes"] == []
    assert families["leakwatch_process_uss_bytes"] == []
    assert families["leakwatch_site_bytes"] == []
    assert families["leakwatch_tracing_active"][0].value == 0.0


def test_a_source_that_is_not_running_yields_nothing():
    registry = CollectorRegistry()
    registry.register(LeakwatchCollector(lambda: None))
    assert generate_latest(registry) == b""


def test_series_bound_holds_with_the_caps_full():
    many = tuple(suspect("type", f"app.T{i}", float(i)) for i in range(500))
    top = {"type": tuple((f"t{i}", 1.0) for i in range(20)), "site": tuple((f"s.py:{i}", 1.0) for i in range(20))}
    families = scrape(sample_report(suspects=many, top=top))
    series = sum(len(samples) for samples in families.values())
    assert series <= exposed_series_bound(Config())


def test_site_labels_keep_the_allocating_frame_and_collisions_add_up():
    base = "/srv/app/" + "deep/" * 10 + "handlers.py:118"
    callers = " <- /srv/venv/lib/gunicorn/" + "workers/" * 12 + "sync.py:135"
    first, second = base + callers + " <- a.py:1", base + callers + " <- b.py:2"
    assert label_of("site", first).startswith(base) and label_of("site", first).endswith(" <- ...")
    assert label_of("site", "/x/" + "y" * 300 + ".py:9").endswith("yyy.py:9")
    long_module = "pkg." + "m." * 80
    report = sample_report(
        top={
            "type": ((long_module + "Leaky", 5.0), ("other." + long_module + "Leaky", 7.0)),
            "site": ((first, 10.0), (second, 32.0)),
        }
    )
    families = scrape(report)
    sites = values(families["leakwatch_site_bytes"], "leakwatch_site_bytes")
    assert list(sites.values()) == [42.0] and len(next(iter(sites))[0][1]) <= MAX_LABEL_LENGTH
    census = values(families["leakwatch_census_objects"], "leakwatch_census_objects")
    assert list(census.values()) == [12.0]


def test_series_and_bytes_bounds_hold_in_the_worst_case():
    """Every kind of suspect past the cap with the longest labels, full top-K lists, every phase
    and probe, an error on each probe, a memory limit, USS and tracing."""
    long = "x" * 400
    many = (
        tuple(suspect("type", f"{long}.T{i}", float(i)) for i in range(300))
        + tuple(suspect("site", f"/{long}/m.py:{i} <- /{long}/c.py:1", float(i)) for i in range(300))
        + (suspect("process", "rss", 1.0),)
    )
    meter = CostMeter()
    for seconds in (0.0001, 0.003, 0.04, 0.7, 3.0, 30.0):
        meter.add(dict.fromkeys(("census", "process", "sites", "detect", "retained"), seconds), 0.01)
    report = sample_report(
        suspects=many,
        candidates=tuple(SeriesKey("type", str(i)) for i in range(500)),
        top={"type": tuple((f"{long}{i}", 1.0) for i in range(20)), "site": tuple((f"/{long}{i}.py:1", 1.0) for i in range(20))},
        errors={"census": 1, "process": 2, "sites": 3, "watcher": 4},
        costs=meter.snapshot({"census": 6, "process": 6, "sites": 6}),
    )
    registry = CollectorRegistry()
    registry.register(LeakwatchCollector(FixedReport(Config.from_options(env={}), report)))
    text = generate_latest(registry).decode()
    lines = text.splitlines(keepends=True)
    assert len([line for line in lines if not line.startswith("#")]) <= exposed_series_bound(Config())
    assert len(text.encode()) <= exposed_bytes_bound(Config())
    assert families_named(text)["leakwatch_suspects_omitted"][0].value == len(many) - Config().max_suspect_series


def families_named(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_the_log_exporter_warns_once_per_new_suspect_and_tells_when_one_clears(caplog):
    first = Suspect(kind="type", key="app.Session", unit="objects", current=10, growth_per_second=1, since=0, confidence=0.99)
    second = dataclasses.replace(first, key="app.Token", id="")
    with caplog.at_level(logging.INFO, logger="leakwatch.exporters.log"):
        log_changes((), (first,))
        log_changes((first,), (first, second))
        log_changes((first, second), (second,))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", f"leakwatch: suspected leak: {first.describe()}"),
        ("WARNING", f"leakwatch: suspected leak: {second.describe()}"),
        ("INFO", "leakwatch: no longer growing: type app.Session"),
    ]
