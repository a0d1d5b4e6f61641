"""Steady-state overhead: a request-style loop's throughput under each tool, side by side in one run.

    python tests/bench/bench_throughput.py [--objects 1M] [--seconds 240] [--peer-seconds 20]
                                           [--baseline-seconds 30] [--repeat 2]
                                           [--escalation-seconds 360] [--escalation-objects 100k]
                                           [--json PATH]

The loop is allocation-heavy on purpose (each request builds dicts, lists and strings, and
does a JSON round trip) and runs on a heap of `--objects` gc-tracked objects (the same records
as bench_sample.py), so every census walks a big heap. Variants, each in a fresh process:

- ``none``: the loop alone (the reference);
- ``leakwatch``: ``leakwatch.start()`` at defaults (cost governor on: cpu_budget 1%);
- ``tracemalloc``: ``tracemalloc.start(1)``;
- ``memray``: ``memray.Tracker`` writing aggregated allocations (its cheapest file format),
  Python frames only;
- ``leakwatch-escalating``: the loop also leaks a class instance every 100 requests (so does
  the ``none`` beside it); leakwatch at defaults but a 10 s warm-up, so its census suspects
  the growth and its governor opens tracing windows within the run (trace_budget 5%). Runs
  `--escalation-seconds` on a heap of `--escalation-objects`: a census of 1M objects stretches
  the interval to about a minute here, and the detector's eight samples would then outlast the
  run; on 100k the census ticks every 5 s, and tracing is in play for most of the run.

How, on a shared machine where one core's speed swings by 10-30% for seconds at a time and a
process's throughput differs from its twin's by 1-3% for the whole of its life (its heap's
layout): each tool runs in a process beside a ``none`` process, both pinned to the *same* core
(so every slow spell of that core falls on both), and both run three phases, started together:
*before* (`--baseline-seconds`, no tool in either), *with* (the tool started in one; the
variant's length) and *after* (the tool stopped). A round's ratio is the tool process's
throughput over its neighbour's during *with*, divided by the same ratio over *before* and
*after*: what the two processes differ by anyway cancels, and what is left is the tool. The
ratio per CPU second of each process (leakwatch's thread included) is reported beside it: on
a shared core the scheduler may give a thread that wakes from a long sleep (leakwatch's) some
of its neighbour's time, which the wall-clock ratio counts in the tool's favour and the CPU
one leaves out, so a target is judged on the lower of the two. A tool's figures are medians
of its rounds (cores alternate from round to round). leakwatch's budget applies to the share
of a core its process gets (half, here), so its cost per CPU second of the application is
what it would be on a core of its own. Measured here, two ``none`` processes on one core
agree to 0.3% over 5 s spans, and differ by a constant 1-2.5%; on two cores they differ by up
to 15% in one round.

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


def run_phase(seconds: float, heap: list[Any], kept: list[Session] | None, watcher: Any = None) -> dict[str, Any]:
    """One phase of the loop: its requests, wall and process CPU seconds (every thread's)."""
    cpu_before = time.process_time()
    started = time.perf_counter()
    requests, overhead = loop(seconds, heap, kept, watcher)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    return {
        "requests": requests,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "requests_per_second": requests / wall,
        "requests_per_cpu_second": requests / cpu if cpu > 0 else 0.0,
        "tracemalloc_overhead_max_bytes": overhead,
    }


class Tool:
    """Starts and stops one variant's tool in this process."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.watcher: Any = None
        self._tracker: Any = None
        self._tmp = tempfile.mkdtemp(prefix="lw-bench-")
        self.facts: dict[str, Any] = {}

    def start(self) -> None:
        if self.variant == "tracemalloc":
            import tracemalloc

            tracemalloc.start(1)
        elif self.variant == "memray":
            import memray

            self._tracker = memray.Tracker(
                os.path.join(self._tmp, "run.bin"), file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS, native_traces=False
            )
            self._tracker.__enter__()
        elif self.variant.startswith("leakwatch"):
            import leakwatch

            options: dict[str, Any] = {"log_suspects": False}
            if self.variant == ESCALATING:
                options["warmup"] = 10.0
            self.watcher = leakwatch.start(**options)

    def stop(self, wall: float) -> None:
        """Stop the tool, keeping what it says of itself (leakwatch: its report over `wall` seconds)."""
        if self.variant == "tracemalloc":
            import tracemalloc

            tracemalloc.stop()
        elif self._tracker is not None:
            self._tracker.__exit__(None, None, None)
            self.facts["memray_file_bytes"] = os.path.getsize(os.path.join(self._tmp, "run.bin"))
        elif self.watcher is not None:
            report = self.watcher.report()
            budget = report.budget
            self.facts["leakwatch"] = {
                "ticks": report.samples,
                "cpu_seconds": report.costs.cpu_seconds,
                "cpu_share": report.costs.cpu_seconds / wall,
                "interval": budget.interval,
                "window": budget.window,
                "cpu_spend": budget.cpu_spend,
                "trace_slowdown": budget.trace_slowdown,
                "trace_spend": budget.trace_spend,
                "busy": budget.busy,
                "windows_deferred": budget.windows_deferred,
                "traced_seconds": budget.traced_seconds,
                "windows": budget.windows,
                "suspects": [{"key": s.key, "kind": s.kind, "sites": list(s.sites)} for s in report.suspects],
            }
            self.watcher.stop()


def child(variant: str, objects: int, baseline: float, seconds: float, leak: bool, core: int | None = None) -> dict[str, Any]:
    """Build the heap, warm up, then (from the parent's go) run before / with / after."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    # A small target may be below what the interpreter holds already: keep some records anyway.
    heap = bench_sample.build_heap(objects) or [bench_sample.make_record(i) for i in range(1000)]
    loop(min(WARM_SECONDS, seconds), heap)
    kept: list[Session] | None = [] if leak else None
    tool = Tool(variant)
    print("ready", flush=True)
    sys.stdin.readline()
    phases = {"before": run_phase(baseline, heap, kept)}
    tool.start()
    phases["with"] = run_phase(seconds, heap, kept, tool.watcher)
    tool.stop(phases["with"]["wall_seconds"])
    phases["after"] = run_phase(baseline, heap, kept)
    with_tool = phases["with"]
    return {
        "variant": variant,
        "objects": objects,
        "seconds": seconds,
        "baseline_seconds": baseline,
        "leaking": leak,
        "core": core,
        "phases": phases,
        "requests_per_second": with_tool["requests_per_second"],
        "requests_per_cpu_second": with_tool["requests_per_cpu_second"],
        "process_cpu_share": with_tool["cpu_seconds"] / with_tool["wall_seconds"],
        "tracemalloc_overhead_max_bytes": with_tool["tracemalloc_overhead_max_bytes"],
        **tool.facts,
    }


# --- the parent: pairs of fresh processes, side by side on one core -----------------------------


def start_child(
    variant: str, objects: int, baseline: float, seconds: float, leak: bool, core: int | None
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        variant,
        "--objects",
        str(objects),
        "--baseline-seconds",
        str(baseline),
        "--seconds",
        str(seconds),
    ]
    if leak:
        command.append("--leak")
    if core is not None:
        command += ["--core", str(core)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_pair(variant: str, objects: int, baseline: float, seconds: float, round_no: int) -> list[dict[str, Any]]:
    """Run `none` and `variant` at once, both pinned to one core (the next one each round), and
    start their phases together."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    core = cores[round_no % len(cores)] if cores else None
    leak = variant == ESCALATING
    procs = [start_child(v, objects, baseline, seconds, leak, core) for v in ("none", variant)]
    results: list[dict[str, Any]] = []
    try:
        for proc in procs:  # wait until both have built their heap
            assert proc.stdout is not None
            proc.stdout.readline()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for name, proc in zip(("none", variant), procs, strict=True):
            out, err = proc.communicate(timeout=2 * (seconds + 2 * baseline) + 600)
            if proc.returncode != 0 or not out.strip():
                results.append({"variant": name, "failed": True, "stderr": err[-2000:]})
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
    objects: int,
    seconds: float,
    peer_seconds: float,
    baseline: float,
    repeat: int,
    escalation_seconds: float,
    escalation_objects: int,
    out: TextIO,
) -> dict[str, Any]:
    """Each tool beside a `none` process on one core, `repeat` times (the escalation once)."""
    skipped = {v: why for v in VARIANTS if (why := available(v))}
    pairs: dict[str, list[list[dict[str, Any]]]] = {}
    plan = [(v, objects, seconds if v == "leakwatch" else peer_seconds, repeat) for v in VARIANTS[1:] if v not in skipped]
    if escalation_seconds > 0:
        plan.append((ESCALATING, escalation_objects, escalation_seconds, 1))
    for variant, heap_objects, length, rounds in plan:
        pairs[variant] = []
        before = min(baseline, length / 2)
        for round_no in range(rounds):
            print(
                f"  {variant} beside none: {before:g} s before, {length:g} s with, {before:g} s after"
                f" (round {round_no + 1}/{rounds}) ...",
                file=out,
                flush=True,
            )
            pairs[variant].append(run_pair(variant, heap_objects, before, length, round_no))
    return {
        "objects": objects,
        "seconds": seconds,
        "peer_seconds": peer_seconds,
        "baseline_seconds": baseline,
        "repeat": repeat,
        "escalation_seconds": escalation_seconds,
        "escalation_objects": escalation_objects,
        "skipped": skipped,
        "pairs": pairs,
        "ratios": ratios_of(pairs),
    }


def round_ratio(none: dict[str, Any], tool: dict[str, Any], per: str) -> dict[str, float]:
    """The tool's throughput over its neighbour's while the tool ran, over the same ratio
    before and after it (`per`: requests_per_second or requests_per_cpu_second)."""

    def rate(run: dict[str, Any], *names: str) -> float:
        phases = [run["phases"][n] for n in names]
        spent = sum(p["wall_seconds" if per == "requests_per_second" else "cpu_seconds"] for p in phases)
        return sum(p["requests"] for p in phases) / spent

    during = rate(tool, "with") / rate(none, "with")
    apart = rate(tool, "before", "after") / rate(none, "before", "after")
    return {"ratio": during / apart, "during": during, "apart": apart}


def ratios_of(pairs: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per variant, the median over its rounds of the round ratio, by wall clock and per CPU second."""
    targets = {"leakwatch": 0.99, ESCALATING: 0.9}
    ratios: dict[str, Any] = {}
    for variant, rounds in pairs.items():
        good = [(n, v) for n, v in rounds if not n.get("failed") and not v.get("failed")]
        if not good:
            continue
        wall = [round_ratio(n, v, "requests_per_second") for n, v in good]
        per_cpu = [round_ratio(n, v, "requests_per_cpu_second") for n, v in good]
        value = statistics.median(r["ratio"] for r in wall)
        cpu_value = statistics.median(r["ratio"] for r in per_cpu)
        target = targets.get(variant)
        ratios[variant] = {
            "value": value,
            "per_cpu_second": cpu_value,
            # Judged on the lower: on a shared core the scheduler may hand a tool's thread some of
            # its neighbour's time (by wall), and per CPU second leaves that out.
            "judged": min(value, cpu_value),
            "rounds": wall,
            "rounds_per_cpu_second": per_cpu,
            "target": target,
            "pass": (min(value, cpu_value) >= target) if target else None,
        }
    return ratios


def render(results: dict[str, Any]) -> str:
    lines = [
        f"request-loop throughput on a {results['objects']:,}-object heap; each tool beside a process without one,"
        " both on one core, before / with / after the tool",
        f"  {'variant':<22} {'rounds':>6} {'req/s with':>10} {'none beside':>11} {'ratio':>7} {'per CPU s':>9}"
        f" {'apart':>6}   target",
    ]
    for variant, rounds in results["pairs"].items():
        r = results["ratios"].get(variant)
        if r is None:
            failed = next((x for pair in rounds for x in pair if x.get("failed")), {})
            lines.append(f"  {variant:<22} failed: {failed.get('stderr', '')[-300:]}")
            continue
        tool = statistics.median(v["requests_per_second"] for _, v in rounds)
        base = statistics.median(n["requests_per_second"] for n, _ in rounds)
        apart = statistics.median(x["apart"] for x in r["rounds"])
        target = f">= {r['target']:g} {'PASS' if r['pass'] else 'FAIL'}" if r.get("target") else ""
        figures = f"{len(rounds):>6} {tool:>10,.0f} {base:>11,.0f} {r['value']:>7.3f} {r['per_cpu_second']:>9.3f} {apart:>6.3f}"
        lines.append(f"  {variant:<22} {figures}   {target}")
        if len(r["rounds"]) > 1:
            each = ", ".join(f"{x['ratio']:.3f}" for x in r["rounds"])
            each_cpu = ", ".join(f"{x['ratio']:.3f}" for x in r["rounds_per_cpu_second"])
            lines.append(f"  {'':<22} rounds: {each}; per CPU second: {each_cpu}")
    for variant, why in results["skipped"].items():
        lines.append(f"  {variant:<22} skipped: {why}")
    lines.append("  ratio: (tool / none) while the tool ran, over (tool / none) before and after it; apart: the latter")
    lines.append("  a target is judged on the lower of the ratio and the ratio per CPU second")
    for variant in ("leakwatch", ESCALATING):
        for _, run in results["pairs"].get(variant, ()):
            lw = run.get("leakwatch")
            if not lw:
                continue
            found = [f"{s['key']} ({len(s['sites'])} sites)" for s in lw["suspects"] if s["kind"] == "type"]
            cpu, tm_bytes = 100 * lw["cpu_share"], run["tracemalloc_overhead_max_bytes"]
            lines += [
                f"  {variant}: {lw['ticks']} ticks, own CPU {cpu:.2f}% of the run; interval {lw['interval']:.1f} s,"
                f" window {lw['window']:.0f} s",
                f"    tracing: slowdown {lw['trace_slowdown']:.1f}x, {lw['windows']} windows ({lw['traced_seconds']:.1f} s,"
                f" tracemalloc's own memory at most {tm_bytes:,} B), spend {100 * lw['trace_spend']:.2f}% (budget 5%);"
                f" suspects: {', '.join(found) or 'none'}",
            ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Request-loop throughput with leakwatch, tracemalloc and memray, side by side.")
    parser.add_argument("--objects", type=bench_sample.parse_size, default=1_000_000, help="heap size (default 1M)")
    parser.add_argument("--seconds", type=float, default=240.0, help="how long leakwatch runs in each round (default 240)")
    parser.add_argument("--peer-seconds", type=float, default=20.0, help="how long tracemalloc and memray run (default 20)")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=30.0,
        help="phases before and after each tool, at most half its run (default 30)",
    )
    parser.add_argument("--repeat", type=bench_sample.positive_int, default=2, help="rounds per tool (default 2)")
    parser.add_argument(
        "--escalation-seconds", type=float, default=360.0, help="length of the escalation run; 0 leaves it out (default 360)"
    )
    parser.add_argument(
        "--escalation-objects",
        type=bench_sample.parse_size,
        default=100_000,
        help="heap size of the escalation run (default 100k: ticks at the 5 s interval, so windows open within it)",
    )
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"where to write the figures (default {DEFAULT_JSON})")
    parser.add_argument("--child", choices=(*VARIANTS, ESCALATING), help=argparse.SUPPRESS)
    parser.add_argument("--leak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.objects, args.baseline_seconds, args.seconds, args.leak, args.core)))
        return 0
    results = measure(
        args.objects,
        args.seconds,
        args.peer_seconds,
        args.baseline_seconds,
        args.repeat,
        args.escalation_seconds,
        args.escalation_objects,
        out,
    )
    bench_sample.publish(render(results), results, args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
