"""Time to detect a 1 MB/min leak at defaults, in simulated time.

    python tests/bench/bench_detect.py [--rate-mib 1] [--hours 6] [--objects 100k] [--json PATH]

A watcher at defaults (interval 5 s, warm-up 60 s, window 300 s, cost governor on) runs on a
`FakeClock`: each step advances the clock by the interval the governor chose and leaks
`rate x interval` bytes for real, so the census and the process probe see real objects and
real memory, while hours pass in seconds. Two leaks, each in a fresh watcher on a heap of
`--objects` records (bench_sample.py's):

- ``objects``: instances of a class, each holding a 1 KiB bytes payload (a type leak);
- ``bytes``: 1 KiB bytes objects appended to a list (untracked by gc: only memory, blocks and,
  once a tracing window opens, their allocation line can tell).

For each it reports when the leak was first named (kind and key) and when its allocation
site was, in simulated seconds since the leak began, with the governor's interval, windows
and tracing spend at that point. Tracing costs are real: tracemalloc's slowdown is measured
in this process, and windows are charged in simulated time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [p for p in (HERE, ROOT) if p not in sys.path]

import bench_sample  # noqa: E402

import leakwatch  # noqa: E402
import leakwatch.watcher  # noqa: E402
from leakwatch.testing import FakeClock  # noqa: E402

PAYLOAD = 1024
DEFAULT_JSON = "bench-detect.json"


class LeakedRecord:
    def __init__(self, i: int) -> None:
        self.i = i
        self.payload = bytes(PAYLOAD)


def leak_objects(kept: list[Any], n: int) -> None:
    kept.extend(LeakedRecord(i) for i in range(n))  # LEAK-SITE objects


def leak_bytes(kept: list[Any], n: int) -> None:
    kept.extend(b"x" * PAYLOAD for _ in range(n))  # LEAK-SITE bytes


LEAKS = {"objects": leak_objects, "bytes": leak_bytes}


def simulate(kind: str, rate_bytes_per_second: float, hours: float) -> dict[str, Any]:
    # A service with a core of its own: this process's run-queue waits (it steps flat out,
    # beside whatever else this machine runs) say nothing of the simulated service's core.
    with mock.patch.object(leakwatch.watcher, "run_and_wait_seconds", lambda: None):
        return _simulate(kind, rate_bytes_per_second, hours)


def _simulate(kind: str, rate_bytes_per_second: float, hours: float) -> dict[str, Any]:
    clock = FakeClock()
    watcher = leakwatch.Watcher(clock=clock, log_suspects=False)
    leak = LEAKS[kind]
    kept: list[Any] = []
    owed = 0.0
    named: dict[str, Any] | None = None
    placed: dict[str, Any] | None = None
    started = time.perf_counter()
    t0 = clock()
    while clock() - t0 < hours * 3600 and placed is None:
        interval = watcher.report().budget.interval or watcher.config.interval
        clock.advance(interval)
        owed += rate_bytes_per_second * interval / PAYLOAD
        n = int(owed)
        owed -= n
        leak(kept, n)
        report = watcher.sample_now()
        ours = [s for s in report.suspects if _is_ours(s, kind)]
        if ours and named is None:
            named = _moment(clock() - t0, report, ours[0])
        placed_by = [s for s in ours if s.sites or s.kind == "site"]
        if placed_by:
            placed = _moment(clock() - t0, report, placed_by[0])
    watcher.stop()
    return {
        "kind": kind,
        "rate_bytes_per_minute": rate_bytes_per_second * 60,
        "simulated_seconds": clock() - t0,
        "real_seconds": time.perf_counter() - started,
        "named": named,
        "placed": placed,
        "leaked_bytes": len(kept) * PAYLOAD,
    }


def _is_ours(suspect: Any, kind: str) -> bool:
    if kind == "objects":
        return suspect.kind == "type" and suspect.key.endswith("LeakedRecord")
    return suspect.kind in ("site", "process") and (suspect.kind == "process" or os.path.basename(__file__) in suspect.key)


def _moment(now: float, report: Any, suspect: Any) -> dict[str, Any]:
    b = report.budget
    return {
        "after_seconds": now,
        "suspect": f"{suspect.kind}:{suspect.key}",
        "sites": list(suspect.sites),
        "interval": b.interval,
        "window": b.window,
        "trace_slowdown": b.trace_slowdown,
        "trace_spend": b.trace_spend,
    }


def measure(objects: int, rate_mib: float, hours: float, out: TextIO) -> dict[str, Any]:
    heap = bench_sample.build_heap(objects)
    results = []
    for kind in LEAKS:
        print(f"  simulating a {rate_mib:g} MiB/min {kind} leak for up to {hours:g} h ...", file=out, flush=True)
        results.append(simulate(kind, rate_mib * 1024**2 / 60, hours))
    del heap
    return {"objects": objects, "rate_mib_per_minute": rate_mib, "hours": hours, "leaks": results}


def render(results: dict[str, Any]) -> str:
    rate, objects = results["rate_mib_per_minute"], results["objects"]
    lines = [f"time to detect a {rate:g} MiB/min leak at defaults (simulated time, {objects:,}-object heap)"]
    for r in results["leaks"]:
        named, placed = r["named"], r["placed"]
        if named is None:
            lines.append(f"  {r['kind']:8s} not named within {r['simulated_seconds'] / 3600:.1f} h")
            continue
        line = f"  {r['kind']:8s} named after {named['after_seconds'] / 60:6.1f} min as {named['suspect'].rsplit('/', 1)[-1]}"
        if placed is not None:
            site = (placed["sites"] or [placed["suspect"]])[0].rsplit("/", 1)[-1]
            spend = 100 * placed["trace_spend"]
            line += f"; its line after {placed['after_seconds'] / 60:6.1f} min ({site}; tracing spend {spend:.2f}%)"
        else:
            line += f"; its line not within {r['simulated_seconds'] / 3600:.1f} h"
        lines.append(line + f"  [{r['real_seconds']:.0f} s real]")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Time to detect a steady leak at defaults, in simulated time.")
    parser.add_argument("--rate-mib", type=float, default=1.0, help="leak rate in MiB per minute (default 1)")
    parser.add_argument("--hours", type=float, default=6.0, help="longest simulated run per leak (default 6)")
    parser.add_argument("--objects", type=bench_sample.parse_size, default=100_000, help="heap size (default 100k)")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"where to write the figures (default {DEFAULT_JSON})")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    results = measure(args.objects, args.rate_mib, args.hours, out)
    bench_sample.publish(render(results), results, args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
