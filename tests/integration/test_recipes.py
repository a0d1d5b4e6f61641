"""The pre-fork recipes in docs/prefork.md, run as written in a shell: each command line of the
page's "Recipes" section for gunicorn, uvicorn and `fastapi run`, with only the example app
replaced by a leaking one and the ports by free ones (the servers' own environment variables
pick the app's port, so the command line stays as the page has it). One scrape of the recipe's
endpoint must show every worker.

A recipe of two lines, the first run in the background (`leakwatch serve ... &` before uWSGI),
runs as one script. Celery's broker is a directory (kombu's filesystem transport), so its
recipe needs no broker server; its task stands in for the web apps' HTTP request.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.integration.conftest import ROOT, free_port, wait_for

PAGE = os.path.join(ROOT, "docs", "prefork.md")
APPS = os.path.join(ROOT, "tests", "integration", "apps")
NOT_RUN: dict[str, str] = {}  # server -> why its recipe is not run
# The page's example app, and the leaking app each server runs in its place.
APPS_FOR = {
    "gunicorn": ("app:app", "leaky_wsgi:app"),
    "uvicorn": ("app:app", "leaky_asgi:app"),
    "fastapi": ("main.py", "leaky_fastapi.py"),
    "uwsgi": ("app:app", "leaky_wsgi:app"),
    "celery": ("-A proj", "-A leaky_celery"),
}
# The directory the page's `leakwatch serve` recipe gathers workers in.
WORKERS_DIR = "/run/leakwatch"
FAST = {"LEAKWATCH_INTERVAL": "0.2", "LEAKWATCH_TRACEMALLOC": "off", "LEAKWATCH_LOG_SUSPECTS": "false"}


def recipes() -> list[str]:
    """The shell command lines of the page's Recipes section."""
    with open(PAGE, encoding="utf-8") as f:
        section = f.read().split("## Recipes", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    out: list[str] = []
    for block in blocks:
        for line in block.splitlines():
            if out and out[-1].endswith("&"):
                out[-1] += "\n" + line  # the background line goes with the next
            elif line.strip():
                out.append(line)
    return out


def server_of(line: str) -> str:
    words = shlex.split(line.rstrip("&").strip())
    programs = [w for w in words if w in (*APPS_FOR, *NOT_RUN)]
    return programs[0] if programs else ""


def test_every_recipe_is_run_or_says_why_not():
    lines = recipes()
    assert len(lines) >= 5
    for line in lines:
        assert server_of(line) or line.startswith("leakwatch serve"), line


@pytest.mark.parametrize("line", [line for line in recipes() if server_of(line) in APPS_FOR], ids=server_of)
def test_a_recipe_as_written_serves_every_worker(line, subprocess_env, tmp_path):
    server = server_of(line)
    example, leaky = APPS_FOR[server]
    metrics, app_port = free_port(), free_port()
    command = line.replace("10464", str(metrics)).replace(example, leaky).replace(WORKERS_DIR, str(tmp_path / "workers"))
    env = {**subprocess_env, **FAST, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    env["PYTHONPATH"] = os.pathsep.join((APPS, env.get("PYTHONPATH", "")))
    # The app's port, from each server's own environment variable.
    env.update(
        GUNICORN_CMD_ARGS=f"--bind=127.0.0.1:{app_port}",
        UVICORN_PORT=str(app_port),
        PORT=str(app_port),
        UWSGI_HTTP=f"127.0.0.1:{app_port}",
        LEAKY_CELERY_DIR=str(tmp_path / "broker"),
    )
    workers = int(re.search(r"(?:-w|--workers|-p|--concurrency)\s+(\d+)", command).group(1))  # type: ignore[union-attr]
    # In a session of its own, so the whole recipe (the shell, leakwatch run, the server) stops together.
    # `wait` keeps the shell the parent of each command of the recipe (it would exec the last).
    proc = subprocess.Popen(
        ["bash", "-c", command + "\nwait"], cwd=APPS, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:

        def every_worker() -> str | bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return False
            return f"leakwatch_workers {float(workers)}" in text and text

        text = str(wait_for(every_worker, timeout=90, step=0.5))
        # Each worker's memory, and the memory of the master that started them (uWSGI's own,
        # under leakwatch serve).
        labels = set(re.findall(r'^leakwatch_process_resident_bytes\{worker="([^"]+)"\}', text, re.M))
        assert labels == {*map(str, range(workers)), "master"}, labels

        def app_answers() -> int:
            if server == "celery":
                task = "import leaky_celery; print(leaky_celery.leak.delay().get(timeout=30))"
                done = subprocess.run([sys.executable, "-c", task], cwd=APPS, env=env, capture_output=True, text=True)
                return int(done.stdout) if done.returncode == 0 else 0
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/leak", timeout=10) as r:
                    return int(r.read())
            except OSError:  # the workers' sampling can start before their server listens
                return 0

        assert wait_for(app_answers, timeout=60, step=0.5), "the recipe serves the app too"
    finally:
        stopped = stop_as_a_container_would(proc)
        _, stderr = proc.communicate()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stopped, "the recipe did not stop within 30 s of SIGTERM"


def stop_as_a_container_would(proc: subprocess.Popen[str], timeout: float = 30.0) -> bool:
    """SIGTERM to each command the recipe's shell started (as a container runtime signals its
    entrypoint; masters stop their workers), then wait for every process of the recipe. A
    signal landing on leakwatch's thread once left a uWSGI worker waiting forever at exit.
    False, after killing them all, when some were still there after `timeout` seconds."""
    for child in psutil.Process(proc.pid).children():
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in psutil.process_iter(["pid"]) if _in_group(p, proc.pid) and p.pid != proc.pid]:
            break
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        return False
    os.killpg(proc.pid, signal.SIGTERM)  # the shell itself
    return True


def _in_group(process: psutil.Process, group: int) -> bool:
    try:
        return os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE
    except (OSError, psutil.Error):
        return False
