"""The HTTP endpoints over real sockets on 127.0.0.1: leakwatch's own server, the WSGI app under
wsgiref, the ASGI app under uvicorn, and the collector in an application's registry."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import leakwatch
from leakwatch.model import Report
from leakwatch.server.standalone import MAX_LINE_BYTES
from tests.integration.conftest import wait_for

FAST = {"interval": 0.05, "tracemalloc": "off"}


def get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


@pytest.fixture
def served() -> Iterator[tuple[leakwatch.Watcher, str]]:
    watcher = leakwatch.Watcher(port=0, **FAST).start()
    wait_for(lambda: watcher.report().samples >= 2)
    host, port = watcher.server_address
    yield watcher, f"http://{host}:{port}"
    watcher.stop()


def test_metrics_and_suspects_are_served_on_loopback_by_default(served):
    watcher, base = served
    assert watcher.server_address[0] == "127.0.0.1"
    status, headers, body = get(base + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = families(body.decode())
    assert found["leakwatch_ticks"][0].value >= 2
    assert "process_resident_memory_bytes" in found  # prometheus_client's own, beside ours
    status, headers, body = get(base + "/api/suspects")
    assert status == 200 and headers["Content-Type"] == "application/json"
    report = Report.from_dict(json.loads(body))
    assert report.samples >= 2 and report.top["type"]


def test_openmetrics_gzip_head_and_name_filter(served):
    _, base = served
    status, headers, body = get(base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    status, headers, body = get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and b"leakwatch_ticks_total" in gzip.decompress(body)
    status, headers, body = get(base + "/metrics", method="HEAD")
    assert status == 200 and body == b""
    status, _, body = get(base + "/metrics?name[]=leakwatch_ticks_total")
    assert set(families(body.decode())) == {"leakwatch_ticks"}


def test_bad_requests_say_what_is_allowed(served):
    _, base = served
    status, _, body = get(base + "/nope")
    assert status == 404 and b"/metrics, /api/suspects" in body
    status, headers, body = get(base + "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD" and b"use GET or HEAD" in body
    status, _, body = get(base + "/metrics?limit=5")
    assert status == 400 and b"'limit'" in body and b"name[]" in body
    status, _, body = get(base + "/api/suspects?x=1")
    assert status == 400 and b"allowed: none" in body
    status, _, _ = get(base + "/metrics")
    assert status == 200  # the server still serves


def test_port_zero_picks_a_free_port_and_stop_closes_it():
    watcher = leakwatch.Watcher(port=0, **FAST).start()
    host, port = watcher.server_address
    assert port > 0
    assert watcher.stop() and watcher.server_address is None
    with socket.socket() as s:
        with pytest.raises(OSError):
            s.connect((host, port))


def test_a_port_in_use_is_logged_and_sampling_goes_on(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="leakwatch"):
            watcher = leakwatch.Watcher(port=port, **FAST).start()
        try:
            assert watcher.server_address is None
            assert f"port {port}" in caplog.text and "port=0 picks a free port" in caplog.text
            wait_for(lambda: watcher.report().samples >= 2)
        finally:
            watcher.stop()


def test_bad_port_option_names_the_range():
    with pytest.raises(leakwatch.ConfigError, match="port.*from 0 to 65535"):
        leakwatch.Watcher(port=70000)


def test_collector_joins_an_application_registry_and_leaves_on_stop():
    registry = CollectorRegistry()
    watcher = leakwatch.Watcher(registry=registry, **FAST).start()
    try:
        wait_for(lambda: watcher.report().samples >= 1)
        assert "leakwatch_ticks" in families(generate_latest(registry).decode())
    finally:
        watcher.stop()
    assert generate_latest(registry) == b""


def test_exposition_passes_promtool(served):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (.ci/run does)"
    _, base = served
    _, _, body = get(base + "/metrics")
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_wsgi_app_mounted_under_a_prefix_in_wsgiref():
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    watcher = leakwatch.Watcher(**FAST)
    watcher.sample_now()
    leak_app = leakwatch.wsgi_app(watcher)

    def host_app(environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith("/leakwatch/"):
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/leakwatch", path[len("/leakwatch") :]
            return leak_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"host app"]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, host_app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert get(base + "/")[2] == b"host app"
        status, _, body = get(base + "/leakwatch/metrics")
        assert status == 200 and b"leakwatch_ticks_total 1.0" in body
        assert get(base + "/leakwatch/api/suspects")[0] == 200
        assert get(base + "/leakwatch/other")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_asgi_app_mounted_in_starlette_under_uvicorn():
    import uvicorn  # in the test extras: missing, this fails (never skips)
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    watcher = leakwatch.Watcher(**FAST)
    watcher.sample_now()

    async def home(request):
        return PlainTextResponse("host app")

    app = Starlette(routes=[Route("/", home), Mount("/leakwatch", app=leakwatch.asgi_app(watcher))])
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))  # handed to uvicorn bound: no other process can take the port meanwhile
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=20)
        base = f"http://127.0.0.1:{port}"
        assert get(base + "/")[2] == b"host app"
        status, headers, body = get(base + "/leakwatch/metrics", headers={"Accept": "application/openmetrics-text"})
        assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
        assert b"leakwatch_ticks_total 1.0" in body
        status, _, body = get(base + "/leakwatch/api/suspects")
        assert status == 200 and json.loads(body)["samples"] == 1
        assert get(base + "/leakwatch/metrics", method="DELETE")[0] == 405
        assert get(base + "/leakwatch/x")[0] == 404
    finally:
        server.should_exit = True
        thread.join(10)
        listening.close()


def test_default_apps_follow_the_process_wide_watcher():
    app = leakwatch.wsgi_app()
    responses = []

    def start_response(status, headers):
        responses.append(status)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/suspects", "QUERY_STRING": ""}
    leakwatch.stop()
    body = b"".join(app(environ, start_response))
    assert responses[-1].startswith("503") and b"not started" in body
    leakwatch.start(**FAST)
    try:
        wait_for(lambda: leakwatch.api.current().report().samples >= 1)
        body = b"".join(app(environ, start_response))
        assert responses[-1] == "200 OK" and json.loads(body)["samples"] >= 1
    finally:
        leakwatch.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_leaves_the_parents_server_serving(served):
    watcher, base = served
    pid = os.fork()
    if pid == 0:  # the child: it must not serve, nor hang, nor break the parent's socket
        code = 0 if watcher.server_address is None else 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert get(base + "/metrics")[0] == 200


def test_malformed_headers_get_an_answer_not_a_traceback(served, capfd):
    _, base = served
    for accept in ("text/plain; version=x", "application/openmetrics-text; version=abc", "*/*;;;"):
        status, headers, body = get(base + "/metrics", headers={"Accept": accept})
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4"), accept
    status, headers, body = get(base + "/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in headers and body.startswith(b"# HELP")
    assert headers["Vary"] == "Accept, Accept-Encoding"
    assert "Traceback" not in capfd.readouterr().err


def test_a_request_line_longer_than_allowed_is_414_whether_its_head_is_whole_or_not(served):
    _, base = served
    host, port = base.rsplit("/", 1)[1].split(":")
    for end in (b"\r\n\r\n", b""):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /metrics?" + b"a" * (MAX_LINE_BYTES + 10) + b" HTTP/1.1" + end)
            answer = s.recv(1024)
        assert answer.startswith(b"HTTP/1.1 414 ") and b"at most %d bytes" % MAX_LINE_BYTES in answer, (end, answer)


def test_head_tells_the_length_a_get_would_have(served):
    _, base = served
    status, headers, body = get(base + "/api/suspects", method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == len(get(base + "/api/suspects")[2])


def test_exporting_failures_are_logged_and_sampling_goes_on(caplog):
    with caplog.at_level(logging.ERROR, logger="leakwatch"):
        watcher = leakwatch.Watcher(registry=object(), port=0, host="256.256.256.256", **FAST).start()
    try:
        assert watcher.server_address is None
        assert "cannot register its metrics" in caplog.text and "cannot serve HTTP on 256.256.256.256" in caplog.text
        wait_for(lambda: watcher.report().samples >= 2)
    finally:
        assert watcher.stop()
