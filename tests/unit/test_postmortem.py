"""The post-mortem on hand-built reports: once per crossing of the line, whole files, what it names."""

from __future__ import annotations

import json
import logging

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.model import Report, Suspect
from leakwatch.postmortem import PostMortem
from leakwatch.refgraph import Graph

LIMIT = 1000.0
SESSION = Suspect(kind="type", key="app.Session", unit="objects", current=5000, growth_per_second=9, since=0, confidence=1)
SITE = Suspect(kind="site", key="app/x.py:3", unit="bytes", current=5000, growth_per_second=9, since=0, confidence=1)


def report(rss: float) -> Report:
    return Report(samples=10, suspects=(SESSION, SITE), process={"rss": rss}, memory_limit=LIMIT)


def test_it_fires_once_per_crossing_and_writes_the_report_and_graphs(tmp_path, caplog):
    pm = PostMortem(Config.from_options(env={}, postmortem_dir=str(tmp_path)))
    drawn: list[str] = []

    def find(target: str) -> Graph:
        drawn.append(target)
        if target == SITE.id:
            raise LeakwatchError("site: nothing traces")
        return Graph(target="app.Session", instances=5000, sampled=8, paths=(), passes=3, seconds=0.1, complete=True)

    with caplog.at_level(logging.WARNING, logger="leakwatch.postmortem"):
        assert pm.check(report(850), find) is None, "under 90%"
        assert pm.check(report(910), find) == str(tmp_path)
        assert pm.check(report(990), find) is None, "still over the line: the same crossing"
        assert pm.check(report(860), find) is None, "under the line but not by the margin"
        assert pm.check(report(920), find) is None
        assert pm.check(report(800), find) is None  # re-armed
        assert pm.check(report(950), find) == str(tmp_path)
    assert pm.written == 2 and drawn == [SESSION.id, SITE.id] * 2
    reports = sorted(tmp_path.glob("postmortem-*-report.json"))
    assert reports and json.loads(reports[0].read_text())["suspects"][0]["key"] == "app.Session"
    assert {p.suffix for p in tmp_path.glob(f"postmortem-*-{SESSION.id}.*")} == {".dot", ".json"}
    assert not list(tmp_path.glob(f"*{SITE.id}*")), "no graph file for a suspect that could not be drawn"
    warning = [r.getMessage() for r in caplog.records if "post-mortem written" in r.getMessage()][0]
    assert "91%" in warning and "app.Session" in warning and "1 graphs" in warning


def test_no_limit_or_zero_means_never(tmp_path):
    never = PostMortem(Config.from_options(env={}, postmortem_dir=str(tmp_path), postmortem_at=0.0))
    assert never.check(report(999), lambda t: None) is None  # type: ignore[arg-type,return-value]
    unlimited = PostMortem(Config.from_options(env={}, postmortem_dir=str(tmp_path)))
    assert unlimited.check(Report(process={"rss": 1e12}), lambda t: None) is None  # type: ignore[arg-type,return-value]
    assert not list(tmp_path.iterdir())
