"""What leakwatch costs, side by side with the tools people use today: the one benchmark command.

    python tests/bench/bench_cost.py [--quick] [--json bench-cost.json] [--only sample,throughput,detect]

Runs, one after the other and each in its own process:

1. ``bench_sample.py``: one sample at defaults vs the floor (``gc.get_objects()`` plus a sliced
   type tally), ``objgraph.typestats()`` and pympler's ``SummaryTracker().diff()``, on heaps of
   100k, 1M and 3M gc-tracked objects and on one of 2M str and bytes; the longest stall a 1 ms
   ticker thread sees; leakwatch's own memory (RSS, history, tracemalloc's view);
2. ``bench_throughput.py``: a request-style loop on a 1M-object heap with leakwatch at defaults
   vs without, vs tracemalloc always on (1 frame), vs memray's Tracker, and with tracing
   escalation in play;
3. ``bench_detect.py``: time to detect a 1 MB/min leak at defaults, in simulated time.

Then prints one table of the ratios with their targets and writes every figure to one JSON
file. ``--quick`` shrinks every section to seconds (small heaps, short runs): it checks that
the command works, and its figures mean nothing. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SECTIONS = ("sample", "throughput", "detect")
QUICK = {
    "sample": ["--sizes", "20000", "--strings", "20000", "--repeat", "1", "--skip-pympler", "--self-samples", "100"],
    "throughput": [
        *("--objects", "20000", "--seconds", "1", "--peer-seconds", "1", "--baseline-seconds", "0.5"),
        *("--repeat", "1", "--escalation-seconds", "2", "--escalation-objects", "20000"),
    ],
    "detect": ["--objects", "10000", "--hours", "0.3"],
}
DEFAULT_JSON = "bench-cost.json"


def run_section(name: str, extra: list[str], json_path: str, out: TextIO) -> dict[str, Any]:
    command = [sys.executable, os.path.join(HERE, f"bench_{name}.py"), *extra, "--json", json_path]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    print(f"== {name}: {' '.join(command[1:])}", file=out, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout, file=out, end="", flush=True)
    if done.returncode != 0:
        return {"failed": True, "returncode": done.returncode, "output": done.stdout[-4000:]}
    with open(json_path, encoding="utf-8") as f:
        results = json.load(f)
    results["section_seconds"] = time.perf_counter() - started
    return results


def summary(results: dict[str, Any]) -> list[str]:
    """One line per target: the ratio measured, the target, and whether it holds."""
    lines = ["", "summary (ratios from this run)", f"  {'figure':<58} {'value':>9}   target"]

    def row(label: str, value: float | None, target: str, ok: bool | None) -> None:
        shown = "-" if value is None else f"{value:.3f}"
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"  {label:<58} {shown:>9}   {target} {verdict}")

    sample = results.get("sample") or {}
    for size in sample.get("sizes", ()):
        name = f"{size['strings']:,} str+bytes" if size.get("strings") else f"{size['objects']:,} objects"
        for key, label in (
            ("leakwatch_over_floor", "sample / floor"),
            ("objgraph_over_leakwatch", "objgraph.typestats / sample"),
            ("leakwatch_stall_over_get_objects_stall", "stall / gc.get_objects() stall"),
            ("leakwatch_stall_over_one_call_stall", "stall / stall of get_objects + types in 1 C call"),
        ):
            r = size["ratios"].get(key)
            if r is not None:
                row(f"{label}, {name}", r["value"], f"{r['op']} {r['target']:g}", r["pass"])
        pympler = size["calls"].get("pympler", {})
        if not pympler.get("skipped"):
            lw = size["calls"]["leakwatch"]["median_seconds"]
            row(f"pympler diff / sample, {name}", pympler["median_seconds"] / lw, "", None)
    memory = sample.get("self_memory")
    if memory:
        row("own RSS growth after the history filled, MiB", (memory["rss_after"] - memory["rss_at_mark"]) / 2**20, "~0", None)
        row("own history bytes at the end, KiB", memory["history_bytes_after"] / 1024, "bounded", None)
    throughput = results.get("throughput") or {}
    for variant, r in throughput.get("ratios", {}).items():
        target = f">= {r['target']:g}" if r.get("target") else ""
        row(f"request-loop throughput vs none beside it: {variant}", r["value"], "", None)
        row(f"  the same, per CPU second: {variant}", r["per_cpu_second"], "", None)
        row(f"  the lower of the two (judged): {variant}", r["judged"], target, r.get("pass"))
    for leak in (results.get("detect") or {}).get("leaks", ()):
        named, placed = leak.get("named"), leak.get("placed")
        row(f"minutes to name a {leak['kind']} leak of 1 MiB/min", named and named["after_seconds"] / 60, "", None)
        row(f"minutes to its allocation line, {leak['kind']}", placed and placed["after_seconds"] / 60, "", None)
    return lines


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(description="leakwatch's cost side by side with objgraph, pympler, tracemalloc and memray.")
    parser.add_argument("--quick", action="store_true", help="seconds-long sections: checks the command, not the figures")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"where to write every figure (default {DEFAULT_JSON})")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        type=lambda t: [s for s in t.split(",") if s],
        help=f"sections to run, of {','.join(SECTIONS)} (default all)",
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; the sections are {', '.join(SECTIONS)}")
    started = time.perf_counter()
    results: dict[str, Any] = {"quick": args.quick, "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            extra = QUICK[name] if args.quick else []
            results[name] = run_section(name, extra, os.path.join(tmp, f"{name}.json"), out)
    results["total_seconds"] = time.perf_counter() - started
    print("\n".join(summary(results)), file=out)
    print(f"total {results['total_seconds']:.0f} s; figures written to {args.json}", file=out)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
