"""Steady-state overhead: a request-style loop's throughput under each tool, side by side in one run.

    python tests/bench/bench_throughput.py [--objects 1M] [--seconds 90] [--peer-seconds 20]
                                           [--repeat 3] [--escalation-seconds 300] [--json PATH]

The loop is allocation-heavy on purpose (each request builds dicts, lists and strings, and
does a JSON round trip) and runs on a heap of `--objects` gc-tracked objects (the same records
as bench_sample.py), so every census walks a big heap. Variants, each in a fresh process:

- ``none``: the loop alone (the reference);
- ``leakwatch``: ``leakwatch.start()`` at defaults (cost governor on: cpu_budget 1%);
- ``tracemalloc``: ``tracemalloc.start(1)`` for the whole run;
- ``memray``: ``memray.Tracker`` writing aggregated allocations (its cheapest file format),
  Python frames only;
- ``leakwatch-escalating``: the loop also leaks a class instance every 100 requests; leakwatch
  at defaults but a 10 s warm-up, so its census suspects the growth and its governor opens
  tracing windows within the run (trace_budget 5%). Runs `--escalation-seconds`, paired with a
  ``none`` run of the same length.

Variants run in rounds (each round runs each variant once, in turn), so a slow spell of the
machine weighs on all alike; ratios are of medians over rounds. ``none`` and ``leakwatch`` run
`--seconds` each (the 1% question needs long runs); tracemalloc and memray, whose cost is
many times larger, `--peer-seconds`. A child builds its heap,
warms the loop for 3 s, starts its tool, then counts requests for the run's length.

Prints a table, writes JSON, exits 0 whatever the figures: a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [p for p in (HERE, ROOT) if p not in sys.path]

import bench_sample  # noqa: E402

VARIANTS = ("none", "leakwatch", "tracemalloc", "memray")
ESCALATING = "leakwatch-escalating"
WARM_SECONDS = 3.0
BATCH = 50  # requests between clock reads
LEAK_EVERY = 100  # the escalating variant keeps one object per this many requests
DEFAULT_JSON = "bench-throughput.json"


# --- the child: one variant, one run ------------------------------------------------------------


class Session:
    """What the escalating variant leaks: a small instance with a dict, one per LEAK_EVERY requests."""

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.headers = {"user-agent": "bench", "x-request-id": str(ident)}


def handle(i: int, heap: list[Any]) -> int:
    """One request: read a record, build a response of small objects, round-trip it as JSON."""
    event, point = heap[(i * 7919) % len(heap)]
    user = {"id": event.account.ident, "name": event.account.name, "roles": list(event.account.roles)}
    items = [{"sku": j, "qty": j % 3, "label": f"item-{j}"} for j in range(8)]
    body = json.dumps({"user": user, "items": items, "at": [point.x, point.y]})
    data = json.loads(body)
    return len(data["items"]) + len(f"{data['user']['name']}-{i}")


def loop(seconds: float, heap: list[Any], kept: list[Session] | None = None) -> int:
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(done, done + BATCH):
            handle(i, heap)
            if kept is not None and i % LEAK_EVERY == 0:
                kept.append(Session(i))
        done += BATCH
    return done


def child(variant: str, objects: int, seconds: float) -> dict[str, Any]:
    # A small target may be below what the interpreter holds already: keep some records anyway.
    heap = bench_sample.build_heap(objects) or [bench_sample.make_record(i) for i in range(1000)]
    loop(min(WARM_SECONDS, seconds), heap)
    result: dict[str, Any] = {"variant": variant, "objects": objects, "seconds": seconds}
    watcher = None
    tracker = None
    kept: list[Session] | None = None
    tmp = tempfile.mkdtemp(prefix="lw-bench-")
    if variant == "tracemalloc":
        import tracemalloc

        tracemalloc.start(1)
    elif variant == "memray":
        import memray

        tracker = memray.Tracker(
            os.path.join(tmp, "run.bin"), file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS, native_traces=False
        )
        tracker.__enter__()
    elif variant.startswith("leakwatch"):
        import leakwatch

        options: dict[str, Any] = {"log_suspects": False}
        if variant == ESCALATING:
            options["warmup"] = 10.0
            kept = []
        watcher = leakwatch.start(**options)
    cpu_before = time.process_time()
    started = time.perf_counter()
    requests = loop(seconds, heap, kept)
    wall = time.perf_counter() - started
    result.update(requests=requests, wall_seconds=wall, requests_per_second=requests / wall)
    result["process_cpu_share"] = (time.process_time() - cpu_before) / wall
    if tracker is not None:
        tracker.__exit__(None, None, None)
        result["memray_file_bytes"] = os.path.getsize(os.path.join(tmp, "run.bin"))
    if watcher is not None:
        report = watcher.report()
        budget = report.budget
        result["leakwatch"] = {
            "ticks": report.samples,
            "cpu_seconds": report.costs.cpu_seconds,
            "cpu_share": report.costs.cpu_seconds / wall,
            "interval": budget.interval,
            "window": budget.window,
            "cpu_spend": budget.cpu_spend,
            "trace_slowdown": budget.trace_slowdown,
            "trace_spend": budget.trace_spend,
            "windows_deferred": budget.windows_deferred,
            "windows": watcher._sampler.sites.windows_started if watcher._sampler.sites is not None else 0,
            "suspects": [{"key": s.key, "kind": s.kind, "sites": list(s.sites)} for s in report.suspects],
        }
        watcher.stop()
    return result


# --- the parent: rounds of fresh processes ------------------------------------------------------


def run_child(variant: str, objects: int, seconds: float) -> dict[str, Any]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        variant,
        "--objects",
        str(objects),
        "--seconds",
        str(seconds),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 600)
    if done.returncode != 0:
        return {"variant": variant, "failed": True, "stderr": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def available(variant: str) -> str | None:
    """Why a variant cannot run here, or None."""
    if variant == "memray":
        try:
            import memray  # noqa: F401
        except ImportError:
            return "memray is not installed (pip install -e '.[bench]')"
    return None


def measure(
    objects: int, seconds: float, peer_seconds: float, repeat: int, escalation_seconds: float, out: TextIO
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    skipped = {v: why for v in VARIANTS if (why := available(v))}
    for round_no in range(1, repeat + 1):
        for variant in VARIANTS:
            if variant in skipped:
                continue
            length = seconds if variant in ("none", "leakwatch") else peer_seconds
            print(f"  round {round_no}/{repeat}: {variant} for {length:g} s ...", file=out, flush=True)
            runs[variant].append(run_child(variant, objects, length))
    escalation: dict[str, list[dict[str, Any]]] = {"none": [], ESCALATING: []}
    if escalation_seconds > 0:
        for variant in ("none", ESCALATING):
            print(f"  escalation: {variant} for {escalation_seconds:g} s ...", file=out, flush=True)
            escalation[variant].append(run_child(variant, objects, escalation_seconds))
    return {
        "objects": objects,
        "seconds": seconds,
        "peer_seconds": peer_seconds,
        "repeat": repeat,
        "escalation_seconds": escalation_seconds,
        "skipped": skipped,
        "runs": runs,
        "escalation_runs": escalation,
        "ratios": ratios_of(runs, escalation),
    }


def median_rps(runs: list[dict[str, Any]]) -> float | None:
    good = [r["requests_per_second"] for r in runs if not r.get("failed")]
    return statistics.median(good) if good else None


def ratios_of(runs: dict[str, list[dict[str, Any]]], escalation: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    base = median_rps(runs["none"])
    ratios: dict[str, Any] = {}
    targets = {"leakwatch": 0.99}
    for variant in VARIANTS[1:]:
        rps = median_rps(runs[variant])
        if base and rps:
            target = targets.get(variant)
            value = rps / base
            ratios[variant] = {"value": value, "target": target, "pass": (value >= target) if target else None}
    base_long, escalating = median_rps(escalation["none"]), median_rps(escalation[ESCALATING])
    if base_long and escalating:
        value = escalating / base_long
        ratios[ESCALATING] = {"value": value, "target": 0.9, "pass": value >= 0.9}
    return ratios


def render(results: dict[str, Any]) -> str:
    lines = [
        f"request-loop throughput on a {results['objects']:,}-object heap: {results['repeat']} rounds of "
        f"{results['seconds']:g} s (tracemalloc, memray: {results['peer_seconds']:g} s), each in a fresh process",
        "  variant                 median req/s   vs none   target",
    ]
    base = median_rps(results["runs"]["none"])
    rows = [(v, results["runs"][v]) for v in VARIANTS] + [
        (f"{v} ({results['escalation_seconds']:g} s)", results["escalation_runs"][v]) for v in ("none", ESCALATING)
    ]
    for name, runs in rows:
        key = name.split(" ")[0]
        if key in results["skipped"] and "(" not in name:
            lines.append(f"  {name:22s}  skipped: {results['skipped'][key]}")
            continue
        rps = median_rps(runs)
        if rps is None:
            if runs:
                lines.append(f"  {name:22s}  failed: {runs[0].get('stderr', '')[-300:]}")
            continue
        r = results["ratios"].get(key) if "(" not in name or key == ESCALATING else None
        if key == "none" and "(" not in name:
            shown = "1.000"
        elif r is not None:
            shown = f"{r['value']:.3f}"
        else:
            shown = "     "
        target = f">= {r['target']:g} {'PASS' if r['pass'] else 'FAIL'}" if r and r.get("target") else ""
        lines.append(f"  {name:22s}  {rps:12,.0f}   {shown:>7s}   {target}")
    for name, runs in (("leakwatch", results["runs"]["leakwatch"]), (ESCALATING, results["escalation_runs"][ESCALATING])):
        for run in runs:
            lw = run.get("leakwatch")
            if not lw:
                continue
            found = [f"{s['key']} ({len(s['sites'])} sites)" for s in lw["suspects"] if s["kind"] == "type"]
            lines.append(
                f"  {name}: {lw['ticks']} ticks, own CPU {100 * lw['cpu_share']:.2f}% of a core; interval {lw['interval']:.1f} s,"
                f" window {lw['window']:.0f} s; tracing: slowdown {lw['trace_slowdown']:.1f}x, {lw['windows']} windows,"
                f" spend {100 * lw['trace_spend']:.2f}% (budget 5%); suspects: {', '.join(found) or 'none'}"
            )
    del base
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Request-loop throughput with leakwatch, tracemalloc and memray, side by side.")
    parser.add_argument("--objects", type=bench_sample.parse_size, default=1_000_000, help="heap size (default 1M)")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of each run without and with leakwatch (default 90)")
    parser.add_argument("--peer-seconds", type=float, default=20.0, help="length of each tracemalloc and memray run (default 20)")
    parser.add_argument("--repeat", type=bench_sample.positive_int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--escalation-seconds", type=float, default=300.0, help="length of the escalation pair; 0 leaves it out (default 300)"
    )
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"where to write the figures (default {DEFAULT_JSON})")
    parser.add_argument("--child", choices=(*VARIANTS, ESCALATING), help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.objects, args.seconds)))
        return 0
    results = measure(args.objects, args.seconds, args.peer_seconds, args.repeat, args.escalation_seconds, out)
    print(render(results), file=out)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(f"figures written to {args.json}", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
