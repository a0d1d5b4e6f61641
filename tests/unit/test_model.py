"""Suspects and reports: stable ids, lossless dict round trips, readable one-liners."""

from __future__ import annotations

import hashlib
import json

import pytest

from leakwatch.model import Report, Retained, SeriesKey, Suspect, leak_ids, suspect_id, unit_of


def make_suspect(**kw) -> Suspect:
    base = dict(
        kind="type",
        key="app.models.Session",
        unit="objects",
        current=1200.0,
        growth_per_second=3.5,
        since=1_700_000_000.0,
        confidence=0.999,
    )
    return Suspect(**{**base, **kw})


def test_id_is_a_stable_hash_of_kind_and_key():
    a = make_suspect()
    b = make_suspect(current=5.0, growth_per_second=99.0)
    assert a.id == b.id == suspect_id("type", "app.models.Session")
    # The documented formula, so the id is the same in every process and every version.
    assert a.id == hashlib.sha1(b"type\x00app.models.Session").hexdigest()[:12]
    assert make_suspect(kind="site").id != a.id


def test_units_follow_kind_and_key():
    assert unit_of("type", "dict") == "objects"
    assert unit_of("site", "app.py:3") == "bytes"
    assert unit_of("process", "rss") == "bytes"
    assert unit_of("process", "py_blocks") == "objects"


def test_report_round_trips_through_json():
    report = Report(
        time=1.5,
        samples=3,
        suspects=(
            make_suspect(sites=("app.py:10",)),
            make_suspect(
                key="app.Token", retained=Retained(bytes=2e6, error_bytes=1e4, samples=32, seconds=0.01, measured_at=1.5)
            ),
        ),
        candidates=(SeriesKey("type", "list"),),
        tracing="idle",
        errors={"census": 1},
        durations={"census": 0.01},
        series=7,
        history_bytes=100,
    )
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report


def test_describe_reads_as_one_line():
    line = make_suspect(sites=("app/views.py:42",)).describe()
    assert "\n" not in line
    assert "app.models.Session" in line and "+210 objects/min" in line and "app/views.py:42" in line
    assert "MiB" in make_suspect(kind="site", unit="bytes", current=3 * 1024**2).describe()
    held = make_suspect(retained=Retained(bytes=12 * 1024**2, error_bytes=300 * 1024, samples=32, seconds=0.01, measured_at=0))
    assert "holding about 12.0 MiB (±300.0 KiB)" in held.describe()


def test_series_key_reads_back_what_it_writes_even_with_colons_in_the_key():
    key = SeriesKey("site", "app/x.py:3")
    assert str(key) == "site:app/x.py:3"
    assert SeriesKey.parse(str(key)) == key
    report = Report(candidates=(key, SeriesKey("type", "list")))
    assert Report.from_dict(report.to_dict()).candidates == report.candidates
    with pytest.raises(ValueError, match="kind:key"):
        SeriesKey.parse("no-kind")


def test_a_type_and_the_lines_that_allocate_it_are_one_leak():
    session = make_suspect(key="app.Session", sites=("/srv/app/views.py:42",))
    line = make_suspect(kind="site", key="/srv/app/views.py:42 <- /srv/app/main.py:7", unit="bytes")
    other = make_suspect(kind="site", key="/srv/app/cache.py:3", unit="bytes")
    leaks = leak_ids((session, line, other))
    assert leaks == {session.id: session.id, line.id: session.id, other.id: other.id}
