"""The sampling benchmark still runs end to end and writes the figures it promises.

Only shape and positive timings are checked, never ratios: timings on a shared test machine
say nothing. The real run is `python tests/bench/bench_sample.py`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

from leakwatch.config import Config

CALLS_MEASURED = ("leakwatch", "floor", "objgraph", "get_objects", "one_call")


def load_bench(name: str = "bench_sample") -> ModuleType:
    """Load a benchmark script by path, whatever pytest's import mode; it is registered in
    sys.modules first, where dataclasses look their module up."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def test_small_run_writes_all_figures(tmp_path: Path) -> None:
    bench = load_bench()
    out = io.StringIO()
    path = tmp_path / "b.json"

    code = bench.main(
        ["--sizes", "20000", "--strings", "20000", "--repeat", "1", "--skip-pympler"]
        + ["--self-samples", "200", "--json", str(path)],
        out=out,
    )

    assert code == 0
    results = json.loads(path.read_text(encoding="utf-8"))
    assert set(results) >= {"meta", "sizes", "self_memory", "total_seconds"}
    assert results["total_seconds"] > 0
    size, strings = results["sizes"]
    assert (size["target"], size["kind"]) == (20_000, "records")
    assert (strings["strings"], strings["kind"]) == (20_000, "str+bytes")
    assert strings["calls"]["leakwatch"]["median_seconds"] > 0
    assert size["objects"] > 0
    calls = size["calls"]
    for name in CALLS_MEASURED:
        assert calls[name]["median_seconds"] > 0, name
        assert calls[name]["min_seconds"] > 0, name
        assert calls[name]["stall_median_ms"] > 0, name
        assert len(calls[name]["runs_seconds"]) == 1, name
    assert calls["pympler"] == {"skipped": True, "reason": "--skip-pympler"}
    assert calls["leakwatch"]["stages_median_seconds"]["census"] > 0
    assert set(size["ratios"]) == {
        "leakwatch_over_floor",
        "objgraph_over_leakwatch",
        "leakwatch_stall_over_get_objects_stall",
        "leakwatch_stall_over_one_call_stall",
    }
    assert not size["ratios"]["objgraph_over_leakwatch"]["applies"], "the time targets are judged from 1M objects"
    for r in size["ratios"].values():
        assert r["value"] > 0

    memory = results["self_memory"]
    assert memory["samples"] == 200
    assert memory["seconds"] > 0
    assert memory["series"] > 0
    assert memory["history_bytes_after"] > 0
    assert memory["rss_before"] > 0 and memory["rss_after"] > 0
    traced = memory["traced"]
    assert traced["samples"] == 200
    assert 0 < traced["mark_samples"] < traced["samples"]
    assert traced["current_after"] > 0

    printed = out.getvalue()
    assert "leakwatch / floor" in printed
    assert "self memory" in printed


def test_scrape_bench_small_storm_reports_size_and_bounds(tmp_path: Path) -> None:
    bench = load_bench("bench_scrape")
    out = tmp_path / "s.json"

    assert bench.main(["--types", "300", "--sites", "300", "--repeat", "3", "--wait", "90", "--json", str(out)]) == 0

    r = json.loads(out.read_text(encoding="utf-8"))
    assert r["suspects_omitted"] > 0, "300 growing types should pass the export cap of 50"
    assert 0 < r["leakwatch_series"] <= r["bound_series"]
    assert 0 < r["leakwatch_bytes"] <= r["bound_bytes"]
    assert 0 < r["bytes_gzip"] < r["bytes"]
    assert r["scrape"]["median_ms"] > 0 and r["render_leakwatch_collector"]["median_ms"] > 0


def test_graph_bench_small_heap_reports_both_tools(tmp_path: Path) -> None:
    bench = load_bench("bench_graph")
    out = tmp_path / "g.json"

    assert bench.main(["--objects", "20000", "--repeat", "1", "--json", str(out)]) == 0

    r = json.loads(out.read_text(encoding="utf-8"))
    assert r["leakwatch"]["path"].startswith("module benchapp .state")
    assert r["leakwatch"]["passes"] >= 2
    assert r["objgraph_find_backref_chain"]["chain_length"] >= 5
    assert r["secret_in_output"]["leakwatch"] is False
    assert all(v > 0 for v in r["ratios"].values())
    untracked = r["untracked"]
    assert untracked["bytes"]["path"].startswith("module benchapp .payloads -> list (len 2000)")
    assert untracked["site"]["path"].startswith("module benchapp .payloads -> list (len 2000)")
    assert untracked["objgraph_find_backref_chain"]["chain_length"] >= 3


def test_cow_bench_measures_each_variant_in_a_forked_worker(tmp_path: Path) -> None:
    bench = load_bench("bench_cow")
    out = tmp_path / "cow.json"

    assert bench.main(["--objects", "20000", "--ticks", "2", "--json", str(out)]) == 0

    r = json.loads(out.read_text(encoding="utf-8"))
    assert set(r["variants"]) == {"no_watcher", "freeze", "no_freeze"}
    assert r["variants"]["freeze"]["samples"] >= 2 and r["variants"]["no_freeze"]["samples"] >= 2
    assert all(v["before"] > 0 and v["after"] > 0 for v in r["variants"].values())
    assert set(r["leakwatch_added_bytes"]) == {"freeze", "no_freeze"}


def test_the_cost_command_runs_every_section_and_names_both_leaks(tmp_path: Path) -> None:
    bench = load_bench("bench_cost")
    out = io.StringIO()
    path = tmp_path / "cost.json"

    assert bench.main(["--quick", "--json", str(path)], out=out) == 0

    r = json.loads(path.read_text(encoding="utf-8"))
    assert not any(r[s].get("failed") for s in ("sample", "throughput", "detect")), out.getvalue()[-3000:]
    assert [s["kind"] for s in r["sample"]["sizes"]] == ["records", "str+bytes"]
    throughput = r["throughput"]
    for variant in ("leakwatch", "tracemalloc", "memray", "leakwatch-escalating"):
        ((none, run),) = throughput["pairs"][variant]  # one round each, side by side
        assert none["variant"] == "none" and none["requests_per_second"] > 0, variant
        assert run["requests_per_second"] > 0 and run["requests_per_cpu_second"] > 0, variant
    assert throughput["pairs"]["leakwatch"][0][1]["leakwatch"]["ticks"] >= 0
    assert set(throughput["ratios"]) == {"leakwatch", "tracemalloc", "memray", "leakwatch-escalating"}
    # A real leak at 1 MiB/min, hours of defaults simulated in seconds: both are named, with
    # their allocation line, and tracing spends no more than trace_budget to find it, plus the
    # one whole window its credit starts with (a traced second costs at most slowdown - 1).
    for leak in r["detect"]["leaks"]:
        assert leak["named"] is not None and leak["placed"] is not None, leak
        placed = leak["placed"]
        first_window = (placed["trace_slowdown"] - 1) * Config().trace_window
        assert placed["trace_spend"] * placed["after_seconds"] <= 0.05 * placed["after_seconds"] + first_window + 1e-6, leak
    assert "summary (ratios from this run)" in out.getvalue()


def test_time_to_verdict_quick_run_writes_every_case(tmp_path: Path) -> None:
    """Two tiny cases under `leakwatch run` at true defaults: far too short for a verdict (the
    defaults need minutes), so this checks the command, its report and its table, not figures."""
    bench = load_bench("bench_time_to_verdict")
    out = io.StringIO()
    path = tmp_path / "v.json"
    assert bench.main(["--quick", "--json", str(path)], out=out) == 0
    cases = json.loads(path.read_text())["cases"]
    assert set(cases) == {"base", "clean"}
    for name, case in cases.items():
        assert "error" not in case, case
        assert case["samples"] >= 1 and case["interval"] == 5.0 and case["window"] == 240.0, (name, case)
        assert 0 <= case["cpu_share"] < 1 and "census" in case["phase_ms"]
        assert case["type_verdict"] is None and not case["false_suspects"], "no verdict in seconds at the defaults"
        assert any("no verdict yet" in line for line in case["summary"]), case["summary"]
    assert "| base |" in out.getvalue() and "| clean |" in out.getvalue()


def test_false_alarm_bench_runs_both_settings(capsys) -> None:
    bench = load_bench("bench_false_alarms")
    assert bench.main(["--seeds", "1", "--hours", "0.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == list(bench.SETTINGS)
    assert all("leaks of 1, 3, 10 objects/s named after [" in line and "None" not in line for line in out), out


def test_a_short_soak_measures_every_run_and_answers_every_scrape(tmp_path: Path) -> None:
    bench = load_bench("bench_soak")
    path = tmp_path / "soak.json"

    code = bench.main(["--seconds", "16", "--every", "4", "--recycle", "5", "--json", str(path)], out=io.StringIO())

    assert code == 0
    results = json.loads(path.read_text(encoding="utf-8"))
    assert results["exit_codes"] == {"leakwatch": 0, "traced": 0, "control": 0}, results["stderr"]
    for name, roles in results["runs"].items():
        assert set(roles) == {"master", "worker0"}, name
        for role, figures in roles.items():
            assert figures["measures"] >= 2, (name, role)  # the start and the end, at least
            assert figures["end"]["rss"] > 0
    worker = results["runs"]["traced"]["worker0"]["end"]
    assert worker["leakwatch_traced_bytes"] > 0 and worker["history_bytes"] > 0
    assert worker["leakwatch_lines"] and all(line.startswith("leakwatch/") for line in worker["leakwatch_lines"])
    for name in ("leakwatch", "traced"):
        assert set(results["load"][f"{name} /metrics"]["statuses"]) == {"200"}, results["load"]
        # 503: the worker asked did not answer in time (a traced worker is slow), as documented.
        assert set(results["load"][f"{name} /api/graph"]["statuses"]) <= {"200", "429", "503"}, results["load"]


def test_a_short_graph_flood_reports_what_clients_and_the_scraper_got(tmp_path: Path) -> None:
    bench = load_bench("bench_flood")
    path = tmp_path / "flood.json"

    code = bench.main(["--clients", "8", "--seconds", "4", "--json", str(path)], out=io.StringIO())

    assert code == 0
    results = json.loads(path.read_text(encoding="utf-8"))
    assert results["graph_requests"] > 0 and set(results["graph_statuses"]) <= {"200", "429"}, results
    assert results["scrapes"] >= 3 and set(results["scrape_statuses"]) == {"200"}, results
    assert results["served_cpu_seconds"] > 0
