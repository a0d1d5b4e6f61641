"""Steady-state overhead: a request-style loop's throughput under each tool, side by side in one run.

    python tests/bench/bench_throughput.py [--objects 1M] [--seconds 90] [--peer-seconds 20]
                                           [--repeat 3] [--escalation-seconds 360] [--json PATH]

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

Each tool runs side by side with a ``none`` process: both are started together, each pinned
to its own core (swapped from round to round), and their measured runs begin at the same
moment, so a slow spell of this shared machine weighs on both alike; run one after the other,
two ``none`` runs here differ by up to 12%. A tool's ratio is the median over its rounds of its
throughput over that of the ``none`` beside it, by wall clock and per CPU second of its
process. leakwatch runs `--seconds` per round (the 1% question needs long runs); tracemalloc
and memray, whose cost is many times larger, `--peer-seconds`. A child builds its heap, warms
the loop for 3 s and starts its tool before the two begin.

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


def loop(seconds: float, heap: list[Any], kept: list[Session] | None = None, watcher: Any = None) -> tuple[int, int]:
    """Requests done in `seconds`, and the most memory tracemalloc itself used meanwhile (as
    leakwatch's reports show it while a window is open)."""
    done = 0
    overhead = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(done, done + BATCH):
            handle(i, heap)
            if kept is not None and i % LEAK_EVERY == 0:
                kept.append(Session(i))
        done += BATCH
        if watcher is not None and done % (20 * BATCH) == 0:
            overhead = max(overhead, int(watcher.report().process.get("trace_overhead", 0)))
    return done, overhead


def child(variant: str, objects: int, seconds: float, core: int | None = None) -> dict[str, Any]:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
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
    # Both processes of a pair start the measured run together (see `run_pair`).
    print("ready", flush=True)
    sys.stdin.readline()
    cpu_before = time.process_time()
    started = time.perf_counter()
    requests, overhead = loop(seconds, heap, kept, watcher)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    result.update(requests=requests, wall_seconds=wall, requests_per_second=requests / wall)
    result.update(process_cpu_share=cpu / wall, requests_per_cpu_second=requests / cpu, core=core)
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
            "traced_seconds": budget.traced_seconds,
            "tracemalloc_overhead_max_bytes": overhead,
            "windows": budget.windows,
            "suspects": [{"key": s.key, "kind": s.kind, "sites": list(s.sites)} for s in report.suspects],
        }
        watcher.stop()
    return result


# --- the parent: pairs of fresh processes, side by side -----------------------------------------


def start_child(variant: str, objects: int, seconds: float, core: int | None) -> subprocess.Popen[str]:
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
    if core is not None:
        command += ["--core", str(core)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_pair(variants: tuple[str, str], objects: int, seconds: float, swap: bool) -> list[dict[str, Any]]:
    """Run two variants at once, each pinned to its own core (swapped from round to round), and
    start their measured runs together: a slow spell of the machine then weighs on both alike,
    which runs one after the other cannot promise on a shared machine."""
    cores: list[int | None] = [0, 1] if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity") else [None, None]
    if swap:
        cores.reverse()
    procs = [start_child(v, objects, seconds, c) for v, c in zip(variants, cores, strict=True)]
    results: list[dict[str, Any]] = []
    try:
        for proc in procs:  # wait until both have built their heap and started their tool
            assert proc.stdout is not None
            proc.stdout.readline()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for variant, proc in zip(variants, procs, strict=True):
            out, err = proc.communicate(timeout=seconds + 600)
            if proc.returncode != 0 or not out.strip():
                results.append({"variant": variant, "failed": True, "stderr": err[-2000:]})
            else:
                results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return results


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
    """Each tool runs beside a `none` process, `repeat` times (cores swapped each time)."""
    skipped = {v: why for v in VARIANTS if (why := available(v))}
    pairs: dict[str, list[list[dict[str, Any]]]] = {}
    plan = [(v, seconds if v == "leakwatch" else peer_seconds, repeat) for v in VARIANTS[1:] if v not in skipped]
    if escalation_seconds > 0:
        plan.append((ESCALATING, escalation_seconds, 1))
    for variant, length, rounds in plan:
        pairs[variant] = []
        for round_no in range(rounds):
            print(f"  {variant} beside none for {length:g} s (round {round_no + 1}/{rounds}) ...", file=out, flush=True)
            pairs[variant].append(run_pair(("none", variant), objects, length, swap=bool(round_no % 2)))
    return {
        "objects": objects,
        "seconds": seconds,
        "peer_seconds": peer_seconds,
        "repeat": repeat,
        "escalation_seconds": escalation_seconds,
        "skipped": skipped,
        "pairs": pairs,
        "ratios": ratios_of(pairs),
    }


def ratios_of(pairs: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per variant, the median over its rounds of (its throughput / the none beside it), by
    wall clock and per CPU second (which also leaves out time the machine gave neither)."""
    targets = {"leakwatch": 0.99, ESCALATING: 0.9}
    ratios: dict[str, Any] = {}
    for variant, rounds in pairs.items():
        good = [(n, v) for n, v in rounds if not n.get("failed") and not v.get("failed")]
        if not good:
            continue
        wall = statistics.median(v["requests_per_second"] / n["requests_per_second"] for n, v in good)
        per_cpu = statistics.median(v["requests_per_cpu_second"] / n["requests_per_cpu_second"] for n, v in good)
        target = targets.get(variant)
        ratios[variant] = {
            "value": wall,
            "per_cpu_second": per_cpu,
            "rounds": [v["requests_per_second"] / n["requests_per_second"] for n, v in good],
            "target": target,
            "pass": (wall >= target) if target else None,
        }
    return ratios


def render(results: dict[str, Any]) -> str:
    lines = [
        f"request-loop throughput on a {results['objects']:,}-object heap; each tool beside a process without one,"
        " both started together, one core each",
        f"  {'variant':<22} {'rounds':>6} {'req/s':>9} {'none beside':>11} {'ratio':>7} {'per CPU s':>9}   target",
    ]
    for variant, rounds in results["pairs"].items():
        r = results["ratios"].get(variant)
        if r is None:
            failed = next((x for pair in rounds for x in pair if x.get("failed")), {})
            lines.append(f"  {variant:<22} failed: {failed.get('stderr', '')[-300:]}")
            continue
        tool = statistics.median(v["requests_per_second"] for _, v in rounds)
        base = statistics.median(n["requests_per_second"] for n, _ in rounds)
        target = f">= {r['target']:g} {'PASS' if r['pass'] else 'FAIL'}" if r.get("target") else ""
        figures = f"{len(rounds):>6} {tool:>9,.0f} {base:>11,.0f} {r['value']:>7.3f} {r['per_cpu_second']:>9.3f}"
        lines.append(f"  {variant:<22} {figures}   {target}")
    for variant, why in results["skipped"].items():
        lines.append(f"  {variant:<22} skipped: {why}")
    for variant in ("leakwatch", ESCALATING):
        for _, run in results["pairs"].get(variant, ()):
            lw = run.get("leakwatch")
            if not lw:
                continue
            found = [f"{s['key']} ({len(s['sites'])} sites)" for s in lw["suspects"] if s["kind"] == "type"]
            cpu, tm_bytes = 100 * lw["cpu_share"], lw["tracemalloc_overhead_max_bytes"]
            lines += [
                f"  {variant}: {lw['ticks']} ticks, own CPU {cpu:.2f}% of a core; interval {lw['interval']:.1f} s,"
                f" window {lw['window']:.0f} s",
                f"    tracing: slowdown {lw['trace_slowdown']:.1f}x, {lw['windows']} windows ({lw['traced_seconds']:.1f} s,"
                f" tracemalloc's own memory at most {tm_bytes:,} B), spend {100 * lw['trace_spend']:.2f}% (budget 5%);"
                f" suspects: {', '.join(found) or 'none'}",
            ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Request-loop throughput with leakwatch, tracemalloc and memray, side by side.")
    parser.add_argument("--objects", type=bench_sample.parse_size, default=1_000_000, help="heap size (default 1M)")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of each run without and with leakwatch (default 90)")
    parser.add_argument("--peer-seconds", type=float, default=20.0, help="length of each tracemalloc and memray run (default 20)")
    parser.add_argument("--repeat", type=bench_sample.positive_int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--escalation-seconds", type=float, default=360.0, help="length of the escalation pair; 0 leaves it out (default 360)"
    )
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"where to write the figures (default {DEFAULT_JSON})")
    parser.add_argument("--child", choices=(*VARIANTS, ESCALATING), help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.objects, args.seconds, args.core)))
        return 0
    results = measure(args.objects, args.seconds, args.peer_seconds, args.repeat, args.escalation_seconds, out)
    bench_sample.publish(render(results), results, args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
