"""Real programs that leak or only look like they do, run under `leakwatch run`.

Each program states its expected verdict in its docstring (`EXPECT: ...`, see
programs/README.md). All programs run at once in a small pool (they mostly sleep), so the
whole set costs about as much time as a few of them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .conftest import PROGRAMS, ROOT

SECONDS = float(os.environ.get("LEAKWATCH_TEST_SCENARIO_SECONDS", "20"))
SETTINGS = {
    "LEAKWATCH_INTERVAL": "0.1",
    "LEAKWATCH_WARMUP": "2",
    "LEAKWATCH_WINDOW": "5",
    "LEAKWATCH_TRACE_WINDOW": "3",
    "LEAKWATCH_MIN_GROWTH_BYTES": "512KiB",
    "LEAKWATCH_LOG_SUSPECTS": "false",
}
NAMES = sorted(f[:-3] for f in os.listdir(PROGRAMS) if f.endswith(".py") and f.startswith(("leak_", "clean_")))


def expectations(name: str) -> set[tuple[str, str]]:
    path = os.path.join(PROGRAMS, f"{name}.py")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    wanted: set[tuple[str, str]] = set()
    for line in lines:
        m = re.match(r"^EXPECT: (\w+)(?:=(.+))?$", line.strip())
        if not m or m.group(1) == "none":
            continue
        kind, key = m.group(1), m.group(2)
        if kind == "site":
            lineno = next(i for i, text in enumerate(lines, 1) if text.rstrip().endswith("# LEAK-SITE"))
            key = f"{os.path.realpath(path)}:{lineno}"
        wanted.add((kind, key))
    return wanted


def run_program(name: str, tmp: str, settings: dict[str, str] = SETTINGS, graphs: bool = False) -> dict[str, Any]:
    report = os.path.join(tmp, f"{name}.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env.update(settings)
    graph_dir = os.path.join(tmp, f"graphs-{name}")
    if graphs:  # a graph of each type suspect, drawn as it is confirmed
        os.makedirs(graph_dir, exist_ok=True)
        env.update(LEAKWATCH_GRAPH_DIR=graph_dir, LEAKWATCH_GRAPH_ON_SUSPECT="true")
    env["SCENARIO_SECONDS"] = str(SECONDS)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    command = [
        sys.executable,
        "-m",
        "leakwatch",
        "run",
        "--quiet",
        "--report",
        report,
        "--",
        sys.executable,
        os.path.join(PROGRAMS, f"{name}.py"),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SECONDS + 60, cwd=tmp)
    assert result.returncode == 0, result.stderr
    with open(report, encoding="utf-8") as f:
        data = json.load(f)
    data["stderr"] = result.stderr
    data["graphs"] = []
    if graphs:
        for entry in sorted(os.listdir(graph_dir)):
            if entry.endswith(".json"):
                with open(os.path.join(graph_dir, entry), encoding="utf-8") as f:
                    data["graphs"].append(json.load(f))
    return data


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = str(tmp_path_factory.mktemp("scenarios"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(NAMES, pool.map(lambda n: run_program(n, tmp, graphs=True), NAMES), strict=False))
    return results


def holder(name: str) -> str | None:
    """The `HOLDER:` a program names: text the path to its leaked objects must contain."""
    with open(os.path.join(PROGRAMS, f"{name}.py"), encoding="utf-8") as f:
        m = re.search(r"^HOLDER: (.+)$", f.read(), re.M)
    return m.group(1).strip() if m else None


def found(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(s["kind"], os.path.realpath(s["key"]) if s["kind"] == "site" else s["key"]) for s in report["suspects"]}


def test_every_leak_kind_in_the_issue_has_a_program():
    assert {"leak_steady", "leak_stepwise", "leak_trickle_in_churn", "leak_c_extension", "leak_untracked_bytes"} <= set(NAMES)
    assert {
        "clean_bounded_cache",
        "clean_sawtooth",
        "clean_random_walk",
        "clean_startup_load",
        "clean_ttl_cache",
        "clean_gc_cycles",
        "clean_bounded_deque",
    } <= set(NAMES)


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("leak_")])
def test_leak_is_found(name, reports):
    report = reports[name]
    missing = expectations(name) - found(report)
    assert not missing, f"{name}: expected {missing}, got {sorted(found(report))}"
    assert report["samples"] > 50
    assert report["errors"] == {}


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("clean_")])
def test_no_false_alarm(name, reports):
    report = reports[name]
    assert expectations(name) == set()
    assert report["suspects"] == [], f"{name}: false alarm {sorted(found(report))}"
    assert report["samples"] > 50
    assert report["errors"] == {}


def test_process_suspect_only_when_python_does_not_explain_rss(reports):
    for name, report in reports.items():
        has_process = any(kind == "process" for kind, _ in found(report))
        assert has_process == (name == "leak_c_extension"), name


def test_interval_alone_sets_a_short_judging_scale(tmp_path):
    """Only LEAKWATCH_INTERVAL: warm-up, window and tracing follow it, thresholds stay default."""
    settings = {"LEAKWATCH_INTERVAL": "0.1", "LEAKWATCH_LOG_SUSPECTS": "false"}
    names = ["leak_steady", "leak_c_extension", "clean_bounded_cache", "clean_sawtooth"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(names, pool.map(lambda n: run_program(n, str(tmp_path), settings), names), strict=True))
    for name, report in results.items():
        wanted = expectations(name)
        if wanted:
            assert wanted <= found(report), f"{name}: expected {wanted}, got {sorted(found(report))}"
        else:
            assert report["suspects"] == [], f"{name}: false alarm {sorted(found(report))}"


@pytest.mark.parametrize("name", [n for n in NAMES if holder(n)])
def test_graph_names_the_real_holder(name, reports):
    (kind, key) = next(e for e in sorted(expectations(name), reverse=True) if e[0] in ("type", "site"))
    graphs = [g for g in reports[name]["graphs"] if (os.path.realpath(g["target"]) if kind == "site" else g["target"]) == key]
    assert graphs, f"{name}: no graph drawn for {key}; stderr: {reports[name]['stderr'][-1000:]}"
    top = graphs[0]["paths"][0]
    assert holder(name) in top["text"], f"{name}: {[p['text'] for p in graphs[0]['paths']]}"
    assert top["accumulation"] is not None


def test_every_object_leak_program_names_its_holder():
    object_leaks = [n for n in NAMES if any(k in ("type", "site") for k, _ in expectations(n))]
    assert "leak_untracked_bytes" in object_leaks and all(holder(n) for n in object_leaks)


def test_stranded_tasks_are_told_from_a_backlog(reports):
    (tasks,) = [s for s in reports["leak_asyncio_stranded"]["suspects"] if s["key"] == "_asyncio.Task"]
    assert "can never be woken" in tasks["detail"], tasks


def test_no_site_type_or_graph_names_leakwatch_itself(reports):
    # leakwatch's own code is never a leak's type, site, caller or holder, in any program.
    own = os.path.join(ROOT, "leakwatch") + os.sep
    for name, report in reports.items():
        for s in report["suspects"]:
            named = [s["key"], *s["sites"], s.get("user_line", "")]
            assert not [n for n in named if own in n or n.startswith("leakwatch.")], (name, s)
        for graph in report["graphs"]:
            for path in graph["paths"]:
                assert not any(step["type"].startswith("leakwatch.") for step in path["steps"]), (name, path["text"])
                assert own not in path["text"], (name, path["text"])


def test_a_type_leaks_retained_size_is_reported(reports):
    (steady,) = [s for s in reports["leak_steady"]["suspects"] if s["key"] == "__main__.Session"]
    retained = steady["retained"]
    assert retained is not None and retained["bytes"] > 0 and retained["samples"] > 0, steady
