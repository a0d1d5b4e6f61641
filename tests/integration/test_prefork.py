"""Real gunicorn masters and workers on 127.0.0.1, with a leaking endpoint and a bounded load loop.

The watcher runs in every worker and never in the master; the master's one endpoint shows each
live worker once under a small `worker` label, which stays within the number of workers as
`max_requests` recycles them, and a killed worker's series go away.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.integration.conftest import ROOT, free_port, wait_for

APPS = os.path.join(ROOT, "tests", "integration", "apps")
LEAKING_TYPE = "leaky_wsgi.Session"
SETTINGS = {
    "LEAKWATCH_INTERVAL": "0.1",
    "LEAKWATCH_WARMUP": "1",
    "LEAKWATCH_WINDOW": "3",
    "LEAKWATCH_TRACEMALLOC": "off",
    "LEAKWATCH_LOG_SUSPECTS": "false",
}
MAX_REQUESTS = 3000  # the load loop's bound

# gunicorn, uvicorn and fastapi-cli are in the test extras: a missing one is an install that went wrong, and
# fails these tests rather than skipping them all unseen.
for _server in ("gunicorn", "uvicorn", "fastapi_cli"):
    importlib.import_module(_server)


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class Served:
    """A gunicorn master under test: its app's URL and leakwatch's URL."""

    def __init__(self, proc: subprocess.Popen[str], app: str, metrics: str) -> None:
        self.proc, self.app, self.metrics = proc, app, metrics

    def workers(self) -> list[dict]:
        return json.loads(get(f"{self.metrics}/api/suspects"))["workers"]

    def drive(self, path: str, until: object = None, limit: int = MAX_REQUESTS) -> set[int]:
        """Requests `path` from 4 threads until `until(pids)` holds or `limit` requests; the pids that answered."""
        pids: set[int] = set()

        def one(_: int) -> int:
            return int(get(f"{self.app}{path}"))

        with ThreadPoolExecutor(max_workers=4) as pool:
            for start in range(0, limit, 100):
                pids.update(pool.map(one, range(start, start + 100)))
                if until is not None and until(pids):
                    break
        return pids


@pytest.fixture
def gunicorn(subprocess_env, tmp_path) -> Iterator:
    """Starts a pre-forking server (gunicorn by default) on free ports, stops it at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, zero_code: bool = True, program: str = "gunicorn", env: dict[str, str] | None = None) -> Served:
        app_port, metrics_port = free_port(), free_port()
        env = {**subprocess_env, **SETTINGS, "LEAKWATCH_PORT": str(metrics_port), **(env or {})}
        env["PYTHONPATH"] = os.pathsep.join((APPS, env["PYTHONPATH"]))
        if program == "gunicorn":
            bind = ["-b", f"127.0.0.1:{app_port}", "--worker-tmp-dir", str(tmp_path)]
        else:
            bind = ["--host", "127.0.0.1", "--port", str(app_port)]
        # `fastapi run` takes its options after the command.
        command = [sys.executable, "-m", *program.split(), *bind, *args]
        if zero_code:
            command = [sys.executable, "-m", "leakwatch", "run", "--quiet", "--", *command]
        proc = subprocess.Popen(command, env=env, cwd=APPS, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        served = Served(proc, f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{metrics_port}")
        wait_for(lambda: _answers(served), timeout=30, step=0.1)
        return served

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        assert "Traceback" not in stderr, stderr[-3000:]


def _answers(served: Served) -> bool:
    try:
        get(f"{served.app}/pid", timeout=2)
        return len(served.workers()) >= 1
    except (OSError, urllib.error.URLError, ValueError):
        return False


def suspects_by_pid(served: Served) -> dict[int, set[str]]:
    return {w["pid"]: {s["key"] for s in w["suspects"] if s["kind"] == "type"} for w in served.workers()}


def worker_labels(served: Served, metric: str = "leakwatch_ticks_total") -> list[str]:
    text = get(f"{served.metrics}/metrics").decode()
    return [line.split('worker="', 1)[1].split('"', 1)[0] for line in text.splitlines() if line.startswith(metric + "{")]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("-w", "2", "--preload"), id="sync-preload"),
        pytest.param(("-w", "2", "-k", "gthread", "--threads", "2"), id="gthread"),
    ],
)
def test_the_leak_is_flagged_in_the_workers_that_served_it(gunicorn, args):
    served = gunicorn(*args, "leaky_wsgi:app")
    leaked = served.drive("/leak", until=lambda pids: len(pids) == 2)
    assert len(leaked) == 2, "the load loop reached only one worker"

    def flagged() -> dict[int, set[str]]:
        served.drive("/leak", limit=200)
        found = suspects_by_pid(served)
        return found if all(LEAKING_TYPE in found.get(pid, ()) for pid in leaked) else {}

    wait_for(flagged, timeout=60, step=0.5)
    assert sorted(worker_labels(served)) == ["0", "1"]  # each slot once
    assert 'leakwatch_suspect_objects{id="' in get(f"{served.metrics}/metrics").decode()
    page = get(f"{served.metrics}/").decode()  # the page a person opens shows every worker's suspects
    assert page.count(LEAKING_TYPE) >= 2 and "worker 0" in page and "worker 1" in page
    # The master samples nothing; every report comes from one of its workers.
    report = json.loads(get(f"{served.metrics}/api/suspects"))
    assert report["master"]["samples"] == 0
    assert {psutil.Process(w["pid"]).ppid() for w in report["workers"]} == {report["master"]["pid"]}


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker"), id="gunicorn-uvicorn-workers"),
        pytest.param(("uvicorn", "--workers", "2"), id="uvicorn-workers-spawned"),
    ],
)
def test_asgi_workers(gunicorn, command):
    served = gunicorn(*command[1:], "leaky_asgi:app", program=command[0])
    leaked = served.drive("/leak", until=lambda pids: len(pids) == 2)
    assert len(leaked) == 2, "the load loop reached only one worker"

    def flagged() -> bool:
        served.drive("/leak", limit=200)
        found = suspects_by_pid(served)
        return all("leaky_asgi.Session" in found.get(pid, ()) for pid in leaked)

    wait_for(flagged, timeout=60, step=0.5)
    assert sorted(worker_labels(served)) == ["0", "1"]


def flagged_in_every_worker(served: Served, leaking_type: str) -> None:
    """Drive the leak until every worker that served it names it, in one endpoint's scrape."""
    leaked = served.drive("/leak", until=lambda pids: len(pids) == 2)
    assert len(leaked) == 2, "the load loop reached only one worker"

    def flagged() -> bool:
        served.drive("/leak", limit=200)
        found = suspects_by_pid(served)
        return all(leaking_type in found.get(pid, ()) for pid in leaked)

    wait_for(flagged, timeout=60, step=0.5)
    assert sorted(worker_labels(served)) == ["0", "1"]
    assert [line for line in get(f"{served.metrics}/metrics").decode().splitlines() if line.startswith("leakwatch_workers ")] == [
        "leakwatch_workers 2.0"
    ]


@pytest.mark.parametrize(
    ("command", "env"),
    [
        pytest.param(("gunicorn", "-w", "2", "leaky_inapp:app"), {}, id="gunicorn-w2"),
        pytest.param(("gunicorn", "leaky_inapp:app"), {"WEB_CONCURRENCY": "2"}, id="gunicorn-web-concurrency"),
        pytest.param(("gunicorn", "-w", "2", "--max-requests", "5000", "leaky_inapp:app"), {}, id="gunicorn-max-requests"),
        pytest.param(("uvicorn", "--workers", "2", "leaky_inapp_asgi:app"), {}, id="uvicorn-workers"),
    ],
)
def test_an_app_that_starts_leakwatch_itself_in_each_worker_gets_one_endpoint(gunicorn, command, env):
    """No --preload and no leakwatch in the master: each worker starts leakwatch as it imports
    the app; the workers share one endpoint instead of fighting for the port."""
    served = gunicorn(*command[1:], program=command[0], zero_code=False, env=env)
    flagged_in_every_worker(served, "leaky_wsgi.Session" if "inapp:" in command[-1] else "leaky_asgi.Session")
    document = json.loads(get(f"{served.metrics}/api/suspects"))
    assert document["master"]["samples"] == 0 and document["master"]["served_by"] in {w["pid"] for w in document["workers"]}
    assert {psutil.Process(w["pid"]).ppid() for w in document["workers"]} == {document["master"]["pid"]}
    stderr = served_stderr_so_far(served)
    assert "Address already in use" not in stderr and "Traceback" not in stderr, stderr[-3000:]


def served_stderr_so_far(served: Served) -> str:
    """What the server wrote to stderr until now (it keeps running)."""
    fd = served.proc.stderr.fileno()  # type: ignore[union-attr]
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.set_blocking(fd, True)
    return b"".join(chunks).decode(errors="replace")


def test_fastapi_run_with_workers_under_leakwatch_run(gunicorn):
    served = gunicorn("--workers", "2", "leaky_fastapi.py", program="fastapi run")
    flagged_in_every_worker(served, "leaky_fastapi.Session")
    assert json.loads(get(f"{served.metrics}/api/suspects"))["master"]["samples"] == 0


def test_the_worker_serving_its_siblings_hands_the_port_over_when_it_exits(gunicorn):
    served = gunicorn("-w", "2", "leaky_inapp:app", zero_code=False, env={"LEAKWATCH_INTERVAL": "0.2"})
    wait_for(lambda: len(served.workers()) == 2, timeout=30, step=0.1)
    serving = json.loads(get(f"{served.metrics}/api/suspects"))["master"]["served_by"]
    os.kill(serving, signal.SIGTERM)  # gunicorn forks a replacement; a sibling takes the port over

    def both_served_again() -> dict | None:
        try:
            document = json.loads(get(f"{served.metrics}/api/suspects"))
        except OSError:  # between the two: nobody serves the port for a tick
            return None
        return document if len(document["workers"]) == 2 and document["master"]["served_by"] != serving else None

    after = wait_for(both_served_again, timeout=30, step=0.3)
    assert after["master"]["served_by"] != serving and serving not in {w["pid"] for w in after["workers"]}


def test_the_config_module_without_leakwatch_run(gunicorn):
    served = gunicorn("-w", "2", "-c", "python:leakwatch.gunicorn", "leaky_wsgi:app", zero_code=False)
    leaked = served.drive("/leak", until=lambda pids: len(pids) == 2)
    wait_for(
        lambda: served.drive("/leak", limit=100) and all(LEAKING_TYPE in suspects_by_pid(served).get(p, ()) for p in leaked),
        60,
        0.5,
    )
    assert sorted(worker_labels(served)) == ["0", "1"]


@pytest.mark.parametrize(
    ("zero_code", "preload"), [(True, False), (True, True), (False, False)], ids=["master", "master-preload", "siblings"]
)
def test_the_served_endpoint_draws_a_workers_graph_by_asking_that_worker(gunicorn, zero_code, preload):
    """The master (or the sibling holding the port) holds none of the leak's objects: /api/graph
    asks the worker that reports it, which draws the graph and answers through their directory.
    With --preload the master froze the app's module (freeze is on by default) before forking:
    the worker's objects pile up in a list no referrer search sees, and the graph still names it."""
    app = "leaky_wsgi:app" if zero_code else "leaky_inapp:app"
    served = gunicorn("-w", "2", *(["--preload"] if preload else []), app, zero_code=zero_code, env={"LEAKWATCH_GRAPHS": "true"})
    wait_for(
        lambda: served.drive("/leak", limit=100) and any(LEAKING_TYPE in keys for keys in suspects_by_pid(served).values()),
        60,
        0.5,
    )
    graph = json.loads(get(f"{served.metrics}/api/graph?type={LEAKING_TYPE}&samples=4", timeout=60))
    assert graph["target"] == LEAKING_TYPE and graph["instances"] > 0
    assert any("_sessions" in path["text"] for path in graph["paths"]), graph["paths"]
    assert all(path["frozen"] is preload for path in graph["paths"]), graph["paths"]
    dot = get(f"{served.metrics}/api/graph?type={LEAKING_TYPE}&format=dot&samples=2", timeout=60).decode()
    assert dot.startswith("digraph") and "_sessions" in dot


def test_recycled_workers_keep_the_worker_label_bounded(gunicorn):
    served = gunicorn("-w", "2", "--max-requests", "40", "leaky_wsgi:app")
    seen_pids: set[int] = set()
    seen_labels: set[str] = set()
    for _ in range(8):
        seen_pids |= served.drive("/ok", limit=100)
        seen_labels |= set(worker_labels(served))
    assert len(seen_pids) >= 6, "max_requests did not recycle workers"
    assert seen_labels <= {"0", "1"}, seen_labels
    live = wait_for(lambda: (w := served.workers()) and len(w) <= 2 and w, timeout=30, step=0.2)
    assert {w["worker"] for w in live} <= {0, 1}


def test_a_killed_workers_series_go_away(gunicorn):
    served = gunicorn("-w", "2", "leaky_wsgi:app")
    wait_for(lambda: len(served.workers()) == 2, timeout=30, step=0.1)
    victim = served.workers()[0]
    os.kill(victim["pid"], signal.SIGKILL)
    # gunicorn forks a replacement, which takes the freed slot under a new pid.
    wait_for(lambda: victim["pid"] not in {w["pid"] for w in served.workers()}, timeout=30, step=0.1)
    after = wait_for(lambda: (w := served.workers()) and len(w) == 2 and w, timeout=30, step=0.1)
    assert sorted(w["worker"] for w in after) == [0, 1]
    assert len(worker_labels(served)) == 2
    # Each live worker's RSS and the master's own; nothing left of the killed one.
    assert sorted(worker_labels(served, "leakwatch_process_resident_bytes")) == ["0", "1", "master"]


def test_leakwatch_serve_gathers_independent_workers(subprocess_env, tmp_path):
    # As uWSGI's workers would be: processes no leakwatch master forked, told where to publish.
    directory, port = tmp_path / "workers", free_port()
    env = {**subprocess_env, **SETTINGS}
    serve = subprocess.Popen(
        [sys.executable, "-m", "leakwatch", "serve", "--workers-dir", str(directory), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    worker_env = {**env, "LEAKWATCH_WORKERS_DIR": str(directory), "LEAKWATCH_PORT": str(port)}
    program = (
        "import leakwatch.auto, time\n"
        "class Job: pass\n"
        "kept = []\n"
        "while True:\n"
        "    kept.extend(Job() for _ in range(50)); time.sleep(0.02)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", program], env=worker_env) for _ in range(2)]
    try:
        assert "serving the workers in" in serve.stdout.readline()
        url = f"http://127.0.0.1:{port}/api/suspects"

        def jobs_flagged() -> list[dict]:
            live = json.loads(get(url))["workers"]
            return live if len(live) == 2 and all("__main__.Job" in {s["key"] for s in w["suspects"]} for w in live) else []

        live = wait_for(jobs_flagged, timeout=60, step=0.3)
        assert {w["pid"] for w in live} == {p.pid for p in procs}
        procs[0].kill()
        procs[0].wait(10)
        wait_for(lambda: [w["pid"] for w in json.loads(get(url))["workers"]] == [procs[1].pid], timeout=30, step=0.1)
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
