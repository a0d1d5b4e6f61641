"""What each path answers, called directly (no socket, no thread): status codes, the errors'
words, and the limits on what a request may ask for."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import threading

import pytest

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.model import Report, Suspect
from leakwatch.prefork import graphs
from leakwatch.prefork.slots import WorkerReport
from leakwatch.server.endpoints import (
    GRAPH_BURST_SECONDS,
    GRAPH_DEPTH,
    GRAPH_SAMPLES,
    GRAPH_SHARE,
    Endpoints,
    Response,
    accepts_gzip,
    thread_and_children_cpu,
)
from leakwatch.testing import FakeClock
from leakwatch.watcher import Watcher

SUSPECT = Suspect(kind="type", key="app.Session", unit="objects", current=900, growth_per_second=3, since=0, confidence=0.999)


class Source:
    """A report source with a fixed report: what the endpoints read from a watcher."""

    def __init__(self, **options: object) -> None:
        self.config = Config.from_options(env={}, **options)
        self.drawn: list[tuple[str, str, int, int]] = []

    def report(self) -> Report:
        return Report(samples=4, suspects=(SUSPECT,))

    def graph(self, target: str, format: str, *, samples: int, max_depth: int) -> dict[str, object]:  # noqa: A002
        self.drawn.append((target, format, samples, max_depth))
        return {"target": target}


def get(endpoints: Endpoints, path: str, query: str = "", method: str = "GET", **headers: str) -> Response:
    return endpoints.respond(method, path, query, {k.replace("_", "-"): v for k, v in headers.items()})


def test_unknown_paths_methods_and_parameters_are_refused_with_what_is_allowed():
    endpoints = Endpoints(Source())
    r = get(endpoints, "/secrets")
    assert r.status.startswith("404") and b"/metrics, /api/suspects, /api/graph, /api/snapshot" in r.body
    r = get(endpoints, "/metrics", method="POST")
    assert r.status.startswith("405") and ("Allow", "GET, HEAD") in r.headers
    r = get(endpoints, "/api/suspects", "pretty=1")
    assert r.status.startswith("400") and b"'pretty'" in r.body and b"allowed: none" in r.body
    r = get(endpoints, "/metrics", "page=2")
    assert r.status.startswith("400") and b"allowed: name[]" in r.body


def test_suspects_answers_the_report_and_head_its_length():
    endpoints = Endpoints(Source())
    r = get(endpoints, "/api/suspects")
    assert r.status == "200 OK" and json.loads(r.body)["suspects"][0]["key"] == "app.Session"
    head = get(endpoints, "/api/suspects", method="HEAD")
    assert head.body == b"" and ("Content-Length", str(len(r.body))) in head.headers


def test_a_source_not_started_yet_answers_503():
    endpoints = Endpoints(lambda: None)
    for path in ("/", "/api/suspects", "/api/graph"):
        assert get(endpoints, path).status.startswith("503"), path
    assert get(endpoints, "/metrics").status == "200 OK", "the process's own metrics are still there"


def test_metrics_are_filtered_by_name_and_gzipped_when_asked():
    endpoints = Endpoints(Source())
    r = get(endpoints, "/metrics", "name[]=leakwatch_suspects", accept_encoding="gzip")
    assert ("Content-Encoding", "gzip") in r.headers
    text = gzip.decompress(r.body).decode()
    assert "leakwatch_suspects{" in text and "process_resident_memory_bytes" not in text
    assert accepts_gzip("br, gzip;q=0.5") and not accepts_gzip("gzip;q=0") and not accepts_gzip("gzip;q=x")
    assert not accepts_gzip("gzip;level=1;q=0") and accepts_gzip("gzip; q = 1")


def test_graphs_are_off_unless_asked_for_and_need_the_token_when_one_is_set():
    assert b"graphs=true" in get(Endpoints(Source()), "/api/graph", "type=dict").body
    guarded = Endpoints(Source(graphs=True, graph_token="s3cret-token"))
    r = get(guarded, "/api/graph", "type=dict")
    assert r.status.startswith("401") and ("WWW-Authenticate", "Bearer") in r.headers
    assert get(guarded, "/api/graph", "type=dict", authorization="Bearer wrong").status.startswith("401")
    assert get(guarded, "/api/graph", "type=dict", authorization="Bearer s3cret-token").status == "200 OK"
    # RFC 7235: the scheme in any case, and more than one space before the token; the token exact.
    assert get(guarded, "/api/graph", "type=dict", authorization="bearer  s3cret-token").status == "200 OK"
    for wrong in ("Bearer s3cret-token2", "Bearer S3CRET-TOKEN", "Basic s3cret-token", "Bearers3cret-token"):
        assert get(guarded, "/api/graph", "type=dict", authorization=wrong).status.startswith("401"), wrong


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("", b"exactly one of suspect=<id>"),
        ("type=dict&site=a.py:1", b"exactly one of"),
        ("suspect=nothex", b"not a suspect id"),
        ("type=dict&format=png", b"allowed: json, dot, svg"),
        (f"type=dict&samples={GRAPH_SAMPLES[1] + 1}", f"from {GRAPH_SAMPLES[0]} to {GRAPH_SAMPLES[1]}".encode()),
        ("type=dict&depth=0", f"from {GRAPH_DEPTH[0]} to {GRAPH_DEPTH[1]}".encode()),
        ("type=dict&depth=-1", b"allowed: an integer"),
        ("type=dict&samples=%C2%B2", "samples='²'; allowed: an integer".encode()),  # a superscript two is no integer
        ("type=dict&type=list", b"give type once"),
    ],
)
def test_a_bad_graph_request_is_400_saying_what_is_allowed(query, words):
    source = Source(graphs=True)
    r = get(Endpoints(source), "/api/graph", query)
    assert r.status.startswith("400") and words in r.body, r.body
    assert source.drawn == []


def test_a_graph_request_names_a_suspect_by_id_and_draws_within_the_bounds():
    source = Source(graphs=True)
    r = get(Endpoints(source), "/api/graph", f"suspect={SUSPECT.id}&samples=3&depth=5")
    assert r.status == "200 OK" and json.loads(r.body) == {"target": SUSPECT.id}
    assert source.drawn == [(SUSPECT.id, "json", 3, 5)]


def test_a_second_graph_while_one_is_drawn_is_429_not_queued():
    source = Source(graphs=True)
    endpoints = Endpoints(source)
    drawing, release = threading.Event(), threading.Event()

    def slow_graph(target: str, format: str, **_: int) -> dict[str, str]:  # noqa: A002
        drawing.set()
        release.wait(10)
        return {}

    source.graph = slow_graph  # type: ignore[method-assign]
    first = threading.Thread(target=get, args=(endpoints, "/api/graph", "type=dict"))
    first.start()
    try:
        assert drawing.wait(10)
        r = get(endpoints, "/api/graph", "type=dict")
        assert r.status.startswith("429") and ("Retry-After", "5") in r.headers
    finally:
        release.set()
        first.join(10)


def test_graphs_past_their_cpu_share_are_told_when_to_come_back():
    source = Source(graphs=True)
    clock, cpu = FakeClock(), FakeClock()
    endpoints = Endpoints(source, clock=clock, cpu_clock=cpu)

    def costly_graph(target: str, format: str, **_: int) -> dict[str, str]:  # noqa: A002
        cpu.advance(0.75 * GRAPH_BURST_SECONDS)
        return {}

    source.graph = costly_graph  # type: ignore[method-assign]
    assert get(endpoints, "/api/graph", "type=dict").status == "200 OK"
    assert get(endpoints, "/api/graph", "type=dict").status == "200 OK"  # the burst, overdrawn
    owed = 0.5 * GRAPH_BURST_SECONDS
    r = get(endpoints, "/api/graph", "type=dict")
    wait = round(owed / GRAPH_SHARE)
    assert r.status.startswith("429") and ("Retry-After", str(wait)) in r.headers, r
    assert f"try again in {wait} s".encode() in r.body
    clock.advance(wait - 1)
    assert get(endpoints, "/api/graph", "type=dict").status.startswith("429")
    clock.advance(2)
    assert get(endpoints, "/api/graph", "type=dict").status == "200 OK"


def test_a_graph_waiting_for_its_turn_costs_no_share():
    source = Source(graphs=True)
    clock, cpu = FakeClock(), FakeClock()
    endpoints = Endpoints(source, clock=clock, cpu_clock=cpu)

    def waiting_graph(target: str, format: str, **_: int) -> dict[str, str]:  # noqa: A002
        clock.advance(60)  # waits for a tick, on the wall clock only
        return {}

    source.graph = waiting_graph  # type: ignore[method-assign]
    assert all(get(endpoints, "/api/graph", "type=dict").status == "200 OK" for _ in range(20))


class MasterSource(Source):
    """A pre-fork master's source: its workers draw the graphs."""

    role = "master"
    workers_dir = ""

    def worker_reports(self) -> list[WorkerReport]:
        return [WorkerReport(slot=0, pid=1, report=self.report())]


def test_a_graph_a_worker_is_too_slow_to_draw_still_spends_the_share(monkeypatch):
    clock = FakeClock()
    asked = []

    def slow_ask(*args: object) -> bytes:
        asked.append(args)
        clock.advance(GRAPH_BURST_SECONDS + 1)  # the master waited all that for the worker
        raise LeakwatchError("worker 0 did not draw the graph within 13 s; try again")

    monkeypatch.setattr(graphs, "ask", slow_ask)
    endpoints = Endpoints(MasterSource(graphs=True), clock=clock, cpu_clock=FakeClock())
    assert get(endpoints, "/api/graph", "type=app.Session").status.startswith("503")
    r = get(endpoints, "/api/graph", "type=app.Session")
    assert r.status.startswith("429") and int(dict(r.headers)["Retry-After"]) >= 1, r
    assert len(asked) == 1, "the worker is not asked again before the share allows it"


def test_snapshots_spend_the_same_share_as_graphs():
    source = Source(graphs=True)
    clock, cpu = FakeClock(), FakeClock()
    endpoints = Endpoints(source, clock=clock, cpu_clock=cpu)

    def costly_snapshot() -> dict[str, object]:
        cpu.advance(GRAPH_BURST_SECONDS + 1)
        return {"leakwatch_snapshot": 1}

    source.snapshot = costly_snapshot  # type: ignore[attr-defined]
    assert get(endpoints, "/api/snapshot").status == "200 OK"
    for path, query in (("/api/snapshot", ""), ("/api/graph", "type=dict")):
        r = get(endpoints, path, query)
        assert r.status.startswith("429") and b"graphs and snapshots have taken their share" in r.body, (path, r)
    assert source.drawn == []


def test_an_svg_drawn_by_a_child_process_counts_in_the_cost():
    before = thread_and_children_cpu()
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", busy], check=True)
    assert thread_and_children_cpu() - before >= 0.3


def test_a_watcher_serves_its_page_and_a_failure_inside_answers_500():
    watcher = Watcher(clock=FakeClock(), log_suspects=False)
    try:
        watcher.sample_now()
        endpoints = Endpoints(watcher)
        page = get(endpoints, "/")
        assert page.status == "200 OK" and b"No verdict yet" in page.body

        def broken() -> Report:
            raise RuntimeError("boom")

        watcher.report = broken  # type: ignore[method-assign]
        r = get(endpoints, "/api/suspects")
        assert r.status.startswith("500") and b"boom" not in r.body
    finally:
        watcher.stop()


class Leaky:
    pass


def test_a_snapshot_is_the_whole_census_of_this_process_one_at_a_time():
    kept = [Leaky() for _ in range(300)]
    watcher = Watcher(clock=FakeClock(), log_suspects=False)
    try:
        watcher.sample_now()
        endpoints = Endpoints(watcher)
        r = get(endpoints, "/api/snapshot")
        assert r.status == "200 OK" and ("Content-Type", "application/json") in r.headers
        doc = json.loads(r.body)
        assert doc["leakwatch_snapshot"] == 1 and doc["types"][f"{__name__}.Leaky"] >= len(kept)
        assert not [t for t in doc["types"] if t.startswith("leakwatch.")], "leakwatch's own objects are left out"
        assert get(endpoints, "/api/snapshot", "top=3").status.startswith("400")
        taking, release = threading.Event(), threading.Event()

        def slow() -> dict[str, object]:
            taking.set()
            release.wait(10)
            return {}

        watcher.snapshot = slow  # type: ignore[method-assign]
        first = threading.Thread(target=get, args=(endpoints, "/api/snapshot"))
        first.start()
        try:
            assert taking.wait(10)
            assert get(endpoints, "/api/snapshot").status.startswith("429")
        finally:
            release.set()
            first.join(10)
    finally:
        watcher.stop()


def test_a_source_without_a_heap_of_its_own_has_no_snapshot():
    r = get(Endpoints(Source()), "/api/snapshot")
    assert r.status.startswith("404") and b"one process" in r.body


def test_the_page_shows_process_memory_against_its_limit_and_when_it_gets_there():
    from leakwatch.detector import RSS_TREND
    from leakwatch.server.page import render_page

    rss = tuple((1.7e9 + 10 * i, 100e6 + 1e6 * i) for i in range(12))
    report = Report(
        samples=12,
        process={"rss": 111e6, "rss_growth": 1e5},
        memory_limit=1024**3,
        trends={RSS_TREND: rss},
    )
    page = render_page(report, Config.from_options(env={}), pid=42)
    said = re.search(r'<p id="rss">([^<]+)</p>', page).group(1)
    assert said == "RSS 105.9 MiB; limit 1.0 GiB (10% used); reaches it in about 2.7 h at its growth over the last window."
    assert 'class="limit"' in page and "bytes, last 2 min" in page
    assert "Process memory" not in render_page(report, Config.from_options(env={}), pid=42, own_memory=False)
