"""/api/graph over real HTTP: off by default, token, bad parameters, one graph at a time, and a
real leaking program whose holder it names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

import leakwatch
from tests.integration.conftest import wait_for

TOKEN = "graph-token-for-tests"


def get(url: str, token: str | None = TOKEN, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Order:
    """What the served process leaks in these tests: kept in a module-level list."""


ORDERS: list[Order] = []


@pytest.fixture
def watcher():
    ORDERS[:] = [Order() for _ in range(500)]
    w = leakwatch.Watcher(interval=0.05, tracemalloc="off", port=0, graphs=True, graph_token=TOKEN).start()
    yield w
    w.stop()
    ORDERS.clear()


@pytest.fixture
def served(watcher):
    host, port = watcher.server_address
    return f"http://{host}:{port}"


def test_graph_is_off_unless_enabled():
    watcher = leakwatch.Watcher(interval=0.05, tracemalloc="off", port=0).start()
    try:
        host, port = watcher.server_address
        status, _, body = get(f"http://{host}:{port}/api/graph?type=dict", token=None)
        assert status == 404 and b"graphs=true" in body
    finally:
        watcher.stop()


def test_graph_names_the_holder_and_needs_the_token(served):
    url = f"{served}/api/graph?type={__name__}.Order"
    assert get(url, token=None)[0] == 401
    status, headers, _ = get(url, token="wrong")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    status, headers, body = get(url)
    assert status == 200 and headers["Content-Type"] == "application/json"
    path = json.loads(body)["paths"][0]
    assert path["text"].startswith(f"module {__name__} .ORDERS -> list (len 500)")
    status, headers, body = get(url + "&format=svg")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and b"ORDERS" in body
    status, headers, body = get(url + "&format=dot")
    assert status == 200 and body.startswith(b"digraph")


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", b"exactly one of suspect"),
        ("?suspect=nothex", b"not a suspect id"),
        ("?suspect=0123456789ab", b"no current suspect"),
        ("?type=no%20spaces", b"names no graph target"),
        ("?type=" + "a" * 400, b"names no graph target"),
        ("?type=app/views.py:42", b"is not a type name"),
        ("?site=app.models.Session", b"is not a site name"),
        ("?site=views.py", b"is not a site name"),
        ("?site=a%0Ab:1", b"names no graph target"),
        ("?type=dict&site=views.py:4", b"exactly one of suspect"),
        ("?type=dict&samples=100000", b"from 1 to 32"),
        ("?type=dict&depth=0", b"from 1 to 64"),
        ("?type=dict&format=pdf", b"json, dot, svg"),
        ("?type=dict&type=list", b"give type once"),
        ("?type=dict&limit=3", b"unknown query parameter"),
    ],
)
def test_bad_graph_requests_say_what_is_allowed(served, query, says):
    status, _, body = get(f"{served}/api/graph{query}")
    assert status == 400 and says in body, body


def test_a_flood_of_graph_requests_gets_one_graph_at_a_time_and_metrics_still_answer():
    ORDERS[:] = [Order() for _ in range(500)]
    watcher = leakwatch.Watcher(interval=0.05, tracemalloc="off", port=0, graphs=True, graph_budget=2).start()
    try:
        host, port = watcher.server_address
        url = f"http://{host}:{port}/api/graph?type={__name__}.Order&samples=32"
        with watcher._tick_lock:  # a tick in progress: whichever graph gets the turn waits for it
            # Each is either the one graph or told it is busy, by the endpoint or by the server.
            with ThreadPoolExecutor(max_workers=8) as pool:
                flood = list(pool.map(lambda _: get(url, token=None)[0], range(24)))
            assert get(f"http://{host}:{port}/metrics", token=None)[0] == 200
        # The request that had the turn waited until its budget ran out (503); the rest were
        # turned away at once, busy (429). Another may take the turn if the flood outlasts a budget.
        assert set(flood) <= {429, 503} and 1 <= flood.count(503) <= 3, flood
        assert get(url, token=None)[0] == 200  # and it serves graphs again afterwards
    finally:
        watcher.stop()
        ORDERS.clear()


def test_graph_of_a_real_leaking_program_by_suspect_id(subprocess_env, tmp_path):
    program = tmp_path / "leaky.py"
    program.write_text(
        "import time, leakwatch\n"
        "class Session:\n"
        "    def __init__(self, i):\n"
        "        self.token = 'tok_' + 'A1b2C3d4E5f6G7h8' + str(i)\n"
        "_sessions = {}\n"
        "w = leakwatch.start(interval=0.1, window=3, warmup=1, port=0, graphs=True, tracemalloc='off', log_suspects=False)\n"
        "print('serving %s:%d' % w.server_address, flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    for _ in range(20):\n"
        "        _sessions['tok_%d_A1b2C3d4E5f6' % i] = Session(i); i += 1\n"
        "    time.sleep(0.05)\n"
    )
    proc = subprocess.Popen([sys.executable, str(program)], env=subprocess_env, stdout=subprocess.PIPE, text=True)
    try:
        address = re.search(r"serving (\S+)", proc.stdout.readline()).group(1)
        base = f"http://{address}"

        def session_suspect():
            report = json.loads(get(f"{base}/api/suspects", token=None)[2])
            return next((s["id"] for s in report["suspects"] if s["key"] == "__main__.Session"), None)

        suspect_id = wait_for(session_suspect, timeout=60, step=0.5)
        status, _, body = get(f"{base}/api/graph?suspect={suspect_id}", token=None)
        assert status == 200, body
        graph = json.loads(body)
        assert graph["paths"][0]["text"].startswith("module __main__ ._sessions -> dict")
        assert b"A1b2C3d4E5f6" not in body  # neither the token attribute nor the key
    finally:
        proc.kill()
        proc.wait(10)


def test_cli_fetches_prints_and_saves_graphs(served, tmp_path, subprocess_env):
    env = {**subprocess_env, "LEAKWATCH_GRAPH_TOKEN": TOKEN}
    cli = [sys.executable, "-m", "leakwatch", "graph", "--url", served, "--type", f"{__name__}.Order"]
    result = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{__name__}.Order: 500 live" in result.stdout and ".ORDERS -> list (len 500)" in result.stdout
    svg = tmp_path / "holders.svg"
    result = subprocess.run([*cli, "-o", str(svg)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and svg.read_bytes().startswith(b"<?xml")
    no_token = subprocess.run(cli, env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert no_token.returncode == 1 and "answered 401" in no_token.stderr
    bad = subprocess.run([*cli, "-o", str(tmp_path / "x.png")], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and ".json, .dot, .gv, .svg" in bad.stderr


def test_graph_dir_takes_requests_and_draws_new_suspects(subprocess_env, tmp_path):
    program = tmp_path / "worker.py"
    program.write_text(
        "import time, leakwatch\n"
        "class Job:\n"
        "    pass\n"
        "backlog = []\n"
        "leakwatch.start(interval=0.1, window=3, warmup=1, tracemalloc='off', log_suspects=False)\n"
        "while True:\n"
        "    backlog.extend(Job() for _ in range(20))\n"
        "    time.sleep(0.05)\n"
    )
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    env = {**subprocess_env, "LEAKWATCH_GRAPH_DIR": str(graphs), "LEAKWATCH_GRAPH_ON_SUSPECT": "1"}
    proc = subprocess.Popen([sys.executable, str(program)], env=env)
    try:
        drawn = wait_for(lambda: sorted(graphs.glob("graph-*.json")), timeout=60, step=0.2)
        first = json.loads(drawn[0].read_text())
        assert first["target"] == "__main__.Job"
        assert first["paths"][0]["text"].startswith("module __main__ .backlog -> list")
        assert drawn[0].with_suffix(".dot").read_text().startswith("digraph leakwatch {")
        with open(graphs / "graph-request", "w") as request:  # as `echo` would: created, then written
            time.sleep(0.15)  # ticks come and go meanwhile; the empty file is not a request for every suspect
            request.write("__main__.Job\n")
        wait_for(lambda: (graphs / f"graph-{proc.pid}-__main__.Job.json").exists(), timeout=30, step=0.2)
        assert not (graphs / "graph-request").exists()  # taken
        (graphs / "graph-request").write_text("not a type!")  # a bad request is logged, nothing breaks
        wait_for(lambda: not (graphs / "graph-request").exists(), timeout=30, step=0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)


def make_payloads(n: int) -> list[bytes]:
    return [bytes(256) + i.to_bytes(4, "little") for i in range(n)]


PAYLOAD_SITE = f"{make_payloads.__code__.co_filename}:{make_payloads.__code__.co_firstlineno + 1}"
PAYLOADS: list[bytes] = []


def test_a_site_graph_while_traced_and_a_clear_answer_when_not(served, subprocess_env):
    # The served watcher does not trace: a site's objects cannot be told apart.
    status, headers, body = get(f"{served}/api/graph?site={PAYLOAD_SITE}")
    assert status == 503 and b"tracemalloc is not tracing" in body and "Retry-After" in headers
    watcher = leakwatch.Watcher(interval=0.05, tracemalloc="always", port=0, graphs=True).start()
    try:
        PAYLOADS[:] = make_payloads(2000)
        host, port = watcher.server_address
        status, _, body = get(f"http://{host}:{port}/api/graph?site={PAYLOAD_SITE}", token=None)
        assert status == 200, body
        graph = json.loads(body)
        assert graph["kind"] == "site" and graph["instances"] >= 2000
        assert graph["paths"][0]["text"].startswith(f"module {__name__} .PAYLOADS -> list (len 2000)"), graph["paths"]
        cli = [sys.executable, "-m", "leakwatch", "graph", "--url", f"http://{host}:{port}", "--site", PAYLOAD_SITE]
        result = subprocess.run(cli, env=subprocess_env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and ".PAYLOADS -> list" in result.stdout, result.stderr
    finally:
        watcher.stop()
        PAYLOADS.clear()
