"""Property tests (hypothesis, bounded): every parser of outside input either parses or gives
its documented error, never anything else: options from keywords and the environment, HTTP
requests, graph targets, workers' report files and graph-request files."""

from __future__ import annotations

import json
import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakwatch.config import OPTIONS, Config
from leakwatch.errors import ConfigError, LeakwatchError
from leakwatch.graphdir import REQUEST_FILE, REQUEST_SYNTAX, GraphDir
from leakwatch.model import Report
from leakwatch.prefork.slots import Slot, live_reports
from leakwatch.refgraph import resolve_target
from leakwatch.refgraph.model import Graph
from leakwatch.server.endpoints import PATHS, Endpoints
from leakwatch.server.standalone import _Head

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = [o.name for o in OPTIONS]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
ANY_VALUE = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.lists(st.integers(), max_size=3)


@BOUNDED
@given(name=st.sampled_from(NAMES), value=ANY_VALUE)
def test_a_keyword_option_is_taken_or_refused_with_a_config_error_naming_it(name, value):
    try:
        Config.from_options(env={}, **{name: value})
    except ConfigError as e:
        assert name in str(e)


@BOUNDED
@given(name=st.sampled_from(NAMES), text=st.text(max_size=40))
def test_an_environment_value_never_stops_the_host(name, text):
    opt = next(o for o in OPTIONS if o.name == name)
    if "\x00" in text:
        return  # no environment holds a NUL
    config = Config.from_options(env={opt.env: text})
    assert getattr(config, name) is not None or opt.default is None


@BOUNDED
@given(
    path=st.sampled_from([*PATHS, "/", "", "/x", "/api/../metrics"]),
    query=st.text(alphabet=string.printable, max_size=80),
    method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "get"]),
    header=st.text(max_size=40),
)
def test_an_http_request_gets_an_answer_and_never_a_500(path, query, method, header):
    class Source:
        config = Config.from_options(env={}, graphs=True)

        def report(self) -> Report:
            return Report(samples=1)

        def graph(self, target: str, format: str, **_: object) -> dict[str, str]:  # noqa: A002
            raise LeakwatchError("nothing to draw")

        def snapshot(self) -> dict[str, object]:
            return {"leakwatch_snapshot": 1}

    r = Endpoints(Source()).respond(method, path, query, {"accept": header, "authorization": header})
    code = int(r.status.split()[0])
    assert code in (200, 400, 401, 404, 405, 429, 503), (r.status, r.body[:200])


HEAD_LINE = st.builds(
    lambda method, target, version: f"{method} {target} {version}".encode("latin-1"),
    st.sampled_from(["GET", "HEAD", "POST", "get", "G3T", ""]),
    st.text(alphabet=st.characters(max_codepoint=255), max_size=40).map(lambda t: "/" + t),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", ""]),
)


@BOUNDED
@given(line=HEAD_LINE | st.binary(max_size=60), headers=st.lists(st.binary(max_size=40), max_size=5))
def test_a_request_head_of_any_bytes_is_parsed_or_refused_with_a_status(line, headers):
    raw = b"\r\n".join([line, *headers]) + b"\r\n\r\n"
    try:
        head = _Head(raw)
    except ValueError as e:
        status, text = e.args
        assert status == "400 Bad Request" and text.endswith("\n")
        return
    assert head.method.isalpha() and isinstance(head.path, str) and isinstance(head.query, str)
    assert all(name == name.lower() for name in head.headers)


@BOUNDED
@given(text=st.text(max_size=200))
def test_a_graph_target_is_resolved_or_refused_saying_why(text):
    try:
        target = resolve_target(text, ())
    except LeakwatchError as e:
        assert str(e)
    else:
        assert target.kind in ("type", "site") and target.key == text


REPORT_FIELDS = [*Report().to_dict(), "suspects"]
REPORT_LIKE = st.fixed_dictionaries(
    {"pid": st.integers(1, 10**6) | JSON, "report": st.dictionaries(st.sampled_from(REPORT_FIELDS), JSON, max_size=6) | JSON}
)


@BOUNDED
@given(
    content=st.one_of(
        REPORT_LIKE.map(json.dumps), JSON.map(json.dumps), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    )
)
def test_a_workers_report_file_of_any_content_never_breaks_the_master(tmp_path_factory, content):
    directory = str(tmp_path_factory.mktemp("workers"))
    slot = Slot.claim(directory)  # held, so the report counts as a live worker's
    try:
        with open(os.path.join(directory, f"worker-{slot.number}.json"), "w", encoding="utf-8") as f:
            f.write(content)
        reports = live_reports(directory)
        assert all(isinstance(w.report, Report) for w in reports)
    finally:
        slot.release()


@BOUNDED
@given(content=st.binary(max_size=400))
def test_a_graph_request_of_any_content_is_drawn_or_ignored(tmp_path_factory, content):
    directory = tmp_path_factory.mktemp("graphs")
    (directory / REQUEST_FILE).write_bytes(content)
    os.utime(directory / REQUEST_FILE, (1, 1))  # settled long ago
    asked: list[str] = []

    def find(target: str) -> Graph:
        asked.append(target)
        raise LeakwatchError("nothing there")

    GraphDir(Config.from_options(env={}, graph_dir=str(directory))).serve((), find)
    assert all(REQUEST_SYNTAX.fullmatch(t) for t in asked), asked
