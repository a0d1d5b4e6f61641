"""Time to verdict on real clocks: real programs under `leakwatch run` at true defaults.

    python tests/bench/bench_time_to_verdict.py [--quick] [--json bench-verdict.json] [--only base,clean]

Each case runs `programs/service.py` (a request-serving program: a working set of N objects,
about half a core of requests, a bounded cache that keeps filling for its first 180 s, and a
leak of one class at a given rate) as a subprocess of `leakwatch run`, with no LEAKWATCH_*
variable and no -o option, optionally beside a CPU-bound neighbour process. The program's own
monitor thread reads `leakwatch.suspects()` once a second, as a user's code would. A leaking
case ends (SIGTERM to `leakwatch run`, as `timeout` or an orchestrator sends it) a little
after its allocation site is known, or at the case's time limit; a clean case runs its whole
time. Printed per case: the time to the type verdict (LeakedRecord named), the time to the site
verdict (the leak's line named, on the type suspect or as a site suspect), leakwatch's own CPU
share over the run (from the final report's CPU seconds), tracing's share of the application's
time, and the false suspects (anything else named). Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVICE = os.path.join(HERE, "programs", "service.py")
LEAK_TYPE = "LeakedRecord"
# After the site verdict, keep running this long: a false suspect may come late.
SETTLE_SECONDS = 20.0


def leak_sites() -> tuple[str, ...]:
    """The leak's lines as site keys end: where the object is made, and where its payload is."""
    with open(SERVICE, encoding="utf-8") as f:
        return tuple(f"service.py:{i}" for i, line in enumerate(f, 1) if "# LEAK-SITE" in line)


# name: (heap objects, leak MiB/min, neighbour, time limit in seconds)
CASES: dict[str, tuple[int, float, bool, float]] = {
    "base": (300_000, 1.0, True, 600.0),
    "heap-100k": (100_000, 1.0, True, 600.0),
    "heap-1M": (1_000_000, 1.0, True, 600.0),
    "rate-0.2": (300_000, 0.2, True, 600.0),
    "rate-5": (300_000, 5.0, True, 600.0),
    "no-neighbour": (300_000, 1.0, False, 600.0),
    "clean": (300_000, 0.0, True, 480.0),
}
QUICK = {"base": (20_000, 20.0, False, 25.0), "clean": (20_000, 0.0, False, 15.0)}


def is_leak(kind: str, key: str, lines: tuple[str, ...]) -> bool:
    if kind == "type":
        return key.endswith(LEAK_TYPE)
    return kind == "site" and key.split(" <- ")[0].endswith(lines)


def run_case(name: str, heap: int, rate: float, neighbour: bool, limit: float, cache_fill: float) -> dict[str, Any]:
    lines = leak_sites()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
    result: dict[str, Any] = {"heap": heap, "leak_mib_per_min": rate, "neighbour": neighbour, "limit": limit}
    type_at = site_at = None
    false: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lw-verdict-") as tmp:
        report_path = os.path.join(tmp, "report.json")
        command = [
            *(sys.executable, "-m", "leakwatch", "run", "--report", report_path, "--"),
            *(sys.executable, SERVICE, "--heap", str(heap), "--leak-mib-per-min", str(rate)),
            *("--cache-fill", str(cache_fill), "--duration", str(limit + 60)),
        ]
        started = time.monotonic()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                event = json.loads(raw)
                t = event["t"]
                for kind, key, sites in event.get("suspects", ()):
                    if is_leak(kind, key, lines):
                        type_at = type_at if type_at is not None or kind != "type" else t
                        if site_at is None and (kind == "site" or any(s.split(" <- ")[0].endswith(lines) for s in sites)):
                            site_at = t
                    else:
                        false.setdefault(f"{kind} {key}", t)
                done = site_at is not None and time.monotonic() - started > site_at + SETTLE_SECONDS
                if done or time.monotonic() - started > limit:
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, stderr = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
            if busy is not None:
                busy.kill()
                busy.wait()
        result["ran"] = time.monotonic() - started
        try:
            with open(report_path, encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, ValueError):
            result["error"] = f"no report: {stderr[-2000:]}"
            return result
    watched = max(report["watched"], 1e-9)
    budget = report["budget"]
    result.update(
        type_verdict=type_at,
        site_verdict=site_at,
        false_suspects=false,
        cpu_share=report["costs"]["cpu_seconds"] / watched,
        trace_spend=budget["trace_spend"],
        interval=budget["interval"],
        window=budget["window"],
        trace_windows=budget["windows"],
        samples=report["samples"],
        # Where a tick's time goes: mean milliseconds per run of each phase.
        phase_ms={
            phase: round(1000 * h["total"] / max(1, sum(h["counts"])), 2) for phase, h in report["costs"]["phases"].items()
        },
        summary=stderr.strip().splitlines()[-3:],
    )
    return result


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| case | heap | leak | neighbour | type verdict | site verdict | leakwatch CPU | tracing's share | false suspects |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | {r['error'][:60]} |")
            continue
        leak = f"{r['leak_mib_per_min']:g} MiB/min" if r["leak_mib_per_min"] else "none"
        false = ", ".join(r["false_suspects"]) or "none"
        lines.append(
            f"| {name} | {r['heap'] // 1000}k | {leak} | {'yes' if r['neighbour'] else 'no'} | {fmt(r['type_verdict'])} "
            f"| {fmt(r['site_verdict'])} | {100 * r['cpu_share']:.2f}% | {100 * r['trace_spend']:.1f}% | {false} |"
        )
    return lines


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny cases in seconds: checks the command works")
    parser.add_argument("--only", help="comma-separated case names: " + ", ".join(CASES))
    parser.add_argument("--cache-fill", type=float, default=180.0, help="seconds the cache keeps filling (default 180)")
    parser.add_argument("--json", default="bench-verdict.json", help="where to write every figure")
    args = parser.parse_args(argv)
    cases = QUICK if args.quick else CASES
    names = args.only.split(",") if args.only else list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(cases)}")
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        heap, rate, neighbour, limit = cases[name]
        print(
            f"== {name}: heap {heap:,}, leak {rate:g} MiB/min, neighbour {neighbour}, up to {limit:.0f} s", file=out, flush=True
        )
        cache_fill = min(args.cache_fill, limit / 2) if args.quick else args.cache_fill
        results[name] = run_case(name, heap, rate, neighbour, limit, cache_fill)
        print(json.dumps(results[name]), file=out, flush=True)
    for line in table(results):
        print(line, file=out)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"cases": results, "python": sys.version.split()[0], "cpus": os.cpu_count()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
