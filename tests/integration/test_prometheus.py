"""End to end with a real Prometheus: it scrapes the leaking demo every second, records the
suspect series, loads deploy/'s alert rules, and answers every query of the dashboard and the
rules through its HTTP API.

Prometheus is Debian's `prometheus` package (.ci/run installs it), started here on 127.0.0.1
with a temporary data directory and stopped when the module's tests end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.deploy.exprs import RULES, dashboard_exprs, rule_exprs, substitute
from tests.integration.conftest import free_port, wait_for

JOB = "leakwatch"
RATE_INTERVAL = "10s"
# Alerts whose expression must return data while the demo leaks (it leaks; its RSS grows towards
# the 128 MiB limit the demo is given; its CPU budget is set at the 0.0001 minimum), and alerts
# whose expression must return nothing (leakwatch is healthy and has fewer suspects than its cap).
# LeakwatchOverBudget stays quiet: the cost governor keeps a watcher within its budget up to
# a 120 s interval (its firing is tested by promtool in tests/deploy).
FIRING = {
    "LeakwatchLeakSuspected",
    "LeakwatchMemoryLimitProjected",
    # The recording rules behind the one-alert-per-leak rule and the fleet view hold while it leaks.
    "job_leak:leakwatch_suspect_processes:count",
    "job_leak_kind_key:leakwatch_suspect_confidence_ratio:max",
    "job_leak:leakwatch_suspect_growth_bytes_per_second:max",
    "job_leak:leakwatch_suspect_growth_objects_per_second:max",
}
QUIET = {"LeakwatchSuspectsOmitted", "LeakwatchErrors", "LeakwatchStalled", "LeakwatchOverBudget"}


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        pytest.fail(f"Prometheus refused {expr!r}: {e.read().decode(errors='replace')}")
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[str]:
    """The leaking demo with leakwatch serving on a free port; yields its host:port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(
        LEAKWATCH_USS="true",
        LEAKWATCH_MEMORY_LIMIT="128MiB",
        LEAKWATCH_TRACEMALLOC="always",
        PYTHONUNBUFFERED="1",
    )
    cmd = [sys.executable, "-m", "leakwatch", "demo", "--port", "0", "--interval", "0.1", "--duration", "600"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"Serving http://([\d.]+:\d+)/metrics", line)
            if m:
                break
        else:
            pytest.fail("the demo ended before it served")
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture(scope="module")
def prometheus(demo, tmp_path_factory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install prometheus (.ci/run does)"
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{demo}']\n"
    )
    port = free_port()
    log = open(tmp / "prometheus.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp / "prometheus.log").read_text()
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(ready, timeout=60, step=0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def recorded(prometheus, demo) -> str:
    """Prometheus once it holds the demo's Session suspect and enough samples for rates."""
    wait_for(lambda: query(prometheus, 'leakwatch_suspect_confidence_ratio{key="leakwatch.demo.Session"}'), timeout=120, step=1)
    wait_for(lambda: query(prometheus, f"count_over_time(leakwatch_ticks_total[{RATE_INTERVAL}]) >= 5"), timeout=30, step=1)
    # and once its rules have recorded what they derive from the suspect (they run every second).
    for name, _ in rule_exprs():
        if ":" in name:
            wait_for(lambda name=name: query(prometheus, name), timeout=30, step=1)
    return prometheus


def test_prometheus_records_the_suspect_and_its_growth(recorded, demo):
    suspects = query(recorded, f'leakwatch_suspect_confidence_ratio{{job="{JOB}", instance="{demo}"}}')
    keys = {s["metric"]["key"] for s in suspects}
    assert "leakwatch.demo.Session" in keys
    assert not any("CacheEntry" in key for key in keys)  # the bounded cache is never suspected
    growth = query(recorded, 'leakwatch_suspect_growth_objects_per_second{key="leakwatch.demo.Session"}')
    assert float(growth[0]["value"][1]) > 10
    assert query(recorded, 'leakwatch_suspects{kind="type"} >= 1')


def test_every_dashboard_query_returns_data(recorded, demo):
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    # Stand in for Grafana: fill the variables as it would with this job and instance picked.
    filled = [(title, substitute(expr, JOB, demo, RATE_INTERVAL)) for title, expr in exprs]
    empty = [(title, expr) for title, expr in filled if not query(recorded, expr)]
    assert not empty, f"dashboard queries with no data: {empty}"


def test_rule_queries_return_data_exactly_when_their_alert_should_fire(recorded, demo):
    exprs = rule_exprs()
    assert {name for name, _ in exprs} == FIRING | QUIET
    for name, expr in exprs:
        result = query(recorded, expr)
        if name in FIRING:
            assert result, f"{name} should hold while the demo leaks: {expr}"
        else:
            assert not result, f"{name} should not hold for a healthy leakwatch: {expr} gave {result}"


def test_prometheus_loaded_every_rule_without_error(recorded):
    with urllib.request.urlopen(recorded + "/api/v1/rules", timeout=10) as r:
        groups = json.load(r)["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules} >= FIRING | QUIET
    wait_for(lambda: all(rule.get("health") == "ok" for rule in _rules(recorded)), timeout=30, step=1)


def _rules(base: str) -> list[dict]:
    with urllib.request.urlopen(base + "/api/v1/rules", timeout=10) as r:
        return [rule for group in json.load(r)["data"]["groups"] for rule in group["rules"]]


def test_scrapes_succeed(recorded, demo):
    up = query(recorded, f'up{{job="{JOB}"}}')
    assert [float(s["value"][1]) for s in up] == [1.0]
    duration = query(recorded, f'scrape_samples_scraped{{job="{JOB}"}}')
    assert float(duration[0]["value"][1]) > 50


def test_exposition_with_suspects_and_sites_passes_promtool(recorded, demo):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (.ci/run does)"
    with urllib.request.urlopen(f"http://{demo}/metrics", timeout=10) as r:
        body = r.read()
    assert b"leakwatch_suspect_confidence_ratio{" in body and b"leakwatch_site_bytes{" in body
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
