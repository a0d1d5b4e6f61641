"""Snapshot documents and their diff, on hand-built snapshots and files."""

from __future__ import annotations

import json

import pytest

from leakwatch.cli import main
from leakwatch.errors import LeakwatchError
from leakwatch.model import Report, Retained, Suspect
from leakwatch.snapshots import diff, format_diff, load, make

HELD = Retained(bytes=3 * 1024**2, error_bytes=1024, samples=32, seconds=0.01, measured_at=0.0)


def snapshot(types: dict[str, float], sites: dict[str, float] | None = None, rss: float = 1e8, t: float = 0.0, **kw):
    suspects = kw.get("suspects", ())
    report = Report(time=t, top={"site": tuple((sites or {}).items())}, process={"rss": rss}, suspects=suspects)
    return make(report, types, pid=7)


def test_diff_lists_what_grew_most_by_type_and_site_with_what_it_holds():
    a = snapshot({"app.Session": 100, "dict": 5000, "app.Gone": 50}, {"app/x.py:3": 1000.0}, rss=1e8)
    session = Suspect(
        kind="type", key="app.Session", unit="objects", current=2100, growth_per_second=1, since=0, confidence=1, retained=HELD
    )
    b = snapshot({"app.Session": 2100, "dict": 5100, "app.New": 10}, {"app/x.py:3": 9000.0}, rss=1.5e8, t=60, suspects=(session,))
    grown, process = diff(a, b)
    assert [(g.kind, g.key, g.delta) for g in grown] == [
        ("type", "app.Session", 2000),
        ("type", "dict", 100),
        ("type", "app.New", 10),
        ("site", "app/x.py:3", 8000.0),
    ]
    assert grown[0].retained == HELD.bytes and grown[1].retained is None
    assert process == {"rss": 5e7}
    text = format_diff(grown, process, 60.0)
    assert text.splitlines()[:3] == [
        "over 60 s:",
        "  process rss: +47.7 MiB",
        "  type app.Session: +2,000 objects (100 objects -> 2,100 objects), holding about 3.0 MiB",
    ]
    assert diff(a, b, rows=1)[0] == [grown[0], grown[3]]


def test_load_refuses_what_is_not_a_snapshot_saying_so(tmp_path):
    good = tmp_path / "a.json"
    good.write_text(json.dumps(snapshot({"dict": 1})))
    assert load(str(good))["pid"] == 7
    for text, words in (
        ("{", "is not JSON"),
        ('{"types": {}}', "is not a leakwatch snapshot"),
        ("[]", "is not a leakwatch snapshot"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(LeakwatchError, match=words):
            load(str(bad))
    with pytest.raises(LeakwatchError, match="cannot read snapshot"):
        load(str(tmp_path / "missing.json"))


def test_the_diff_command_prints_it_and_exits_1_on_a_bad_file(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(snapshot({"app.Session": 1})))
    b.write_text(json.dumps(snapshot({"app.Session": 41}, t=5)))
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        assert main(["diff", str(a), str(b)], out=f) == 0
    assert "type app.Session: +40 objects" in out.read_text()
    assert main(["diff", str(a), str(tmp_path / "nope.json")]) == 1
    assert "cannot read snapshot" in capsys.readouterr().err
    assert main(["diff", str(a), str(b), "--top", "0"]) == 2
