"""Soak: does leakwatch's own memory stay flat over hours at its fastest interval?

Three runs of the same clean pre-fork service (programs/soak_service.py: a master, worker 0 for
the whole run, worker 1 recycled every `--recycle` seconds), side by side for `--seconds`:

- `leakwatch`: leakwatch in the master before it forks, at `--interval` (the fastest allowed by
  default), its tracemalloc windows opening and closing as at defaults;
- `traced`: the same, in a program that traces its own allocations from the start, so the bytes
  held by leakwatch's code are measured (tracemalloc, any of 16 frames in leakwatch's package);
- `control`: no leakwatch, to tell leakwatch's growth from the allocator's.

Meanwhile /metrics of both masters is scraped once a second and a graph is asked for every
10 s (the master asks a worker to draw it). The master and worker 0 of each run measure
themselves every `--every` seconds: RSS, pymalloc blocks, leakwatch's history bytes and objects.

    python tests/bench/bench_soak.py                 # one hour
    python tests/bench/bench_soak.py --seconds 120   # a short run
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from leakwatch.config import OPTIONS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SERVICE = HERE / "programs" / "soak_service.py"
FASTEST_INTERVAL = next(o.low for o in OPTIONS if o.name == "interval")
RUNS = {"leakwatch": ["--leakwatch"], "traced": ["--leakwatch", "--trace"], "control": []}
SERVED = ("leakwatch", "traced")
ROLES = ("master", "worker0")
MIB = 1024 * 1024


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3600.0, help="how long each run lasts (default one hour)")
    parser.add_argument("--interval", type=float, default=FASTEST_INTERVAL, help="leakwatch's interval")
    parser.add_argument("--every", type=float, help="seconds between measures (default: a twelfth of the run)")
    parser.add_argument("--recycle", type=float, default=30.0, help="worker 1's life, in seconds")
    parser.add_argument("--json", help="also write the figures there")
    args = parser.parse_args(argv)
    every = args.every or args.seconds / 12
    with tempfile.TemporaryDirectory(prefix="leakwatch-soak-") as tmp:
        results = soak(Path(tmp), args.seconds, args.interval, every, args.recycle, out)
    results["meta"] = {
        "seconds": args.seconds,
        "interval": args.interval,
        "every": every,
        "recycle": args.recycle,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    print(render(results), file=out)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


def soak(tmp: Path, seconds: float, interval: float, every: float, recycle: float, out: TextIO) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    ports = {name: _free_port() for name in SERVED}
    processes = {}
    for name, flags in RUNS.items():
        command = [sys.executable, str(SERVICE), *flags, "--interval", str(interval), "--measure", str(tmp / f"{name}.jsonl")]
        command += ["--every", str(every), "--recycle", str(recycle), "--duration", str(seconds)]
        if name in ports:
            command += ["--port", str(ports[name])]
        processes[name] = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    print(f"soak: {len(RUNS)} runs of {seconds:g} s at interval {interval:g} s ...", file=out, flush=True)
    ends_at = time.monotonic() + seconds
    load = Load({name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, ends_at - 2)
    load.start()
    errors = {}
    try:
        for name, process in processes.items():
            _, err = process.communicate(timeout=seconds + 120)
            errors[name] = [line for line in err.splitlines() if line.strip()][-20:]
    finally:
        load.stop()
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    measures = {name: _read(tmp / f"{name}.jsonl") for name in RUNS}
    return {
        "runs": {name: summarize(measures[name]) for name in RUNS},
        "load": load.summary(),
        "exit_codes": {name: p.returncode for name, p in processes.items()},
        "stderr": errors,
    }


class Load:
    """Scrapes each master's /metrics once a second and asks it for a graph every 10 s."""

    def __init__(self, bases: dict[str, str], until: float) -> None:
        self.bases = bases
        self.until = until
        self.statuses: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.slowest: dict[str, float] = collections.defaultdict(float)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        ready = time.monotonic() + 30  # the masters start serving
        while time.monotonic() < ready and not all(self._answers(base) for base in self.bases.values()):
            time.sleep(0.2)
        n = 0
        while not self._stop.wait(1.0) and time.monotonic() < self.until:
            n += 1
            for name, base in self.bases.items():
                self._get(f"{name} /metrics", base + "/metrics")
                if n % 10 == 3:
                    self._get(f"{name} /api/graph", base + "/api/graph?type=__main__.Order&samples=8")

    @staticmethod
    def _answers(base: str) -> bool:
        try:
            with urllib.request.urlopen(base + "/metrics", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def _get(self, what: str, url: str) -> None:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
                status = str(r.status)
        except urllib.error.HTTPError as e:
            status = str(e.code)
        except OSError as e:
            status = type(e).__name__
        self.statuses[what][status] += 1
        if status == "200":
            self.slowest[what] = max(self.slowest[what], time.monotonic() - started)

    def summary(self) -> dict[str, Any]:
        return {
            what: {"statuses": dict(c), "slowest_ok_seconds": round(self.slowest[what], 3)} for what, c in self.statuses.items()
        }


def summarize(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Per role: the measures at the start, the middle and the end, and the change from the
    middle to the end (the history is full by the middle: what grows after it grows for good)."""
    out: dict[str, Any] = {}
    for role in ROLES:
        mine = [line for line in lines if line["role"] == role]
        if not mine:
            continue
        start, middle, end = mine[0], mine[len(mine) // 2], mine[-1]
        fields = [k for k in start if k not in ("t", "role", "pid")]
        out[role] = {
            "measures": len(mine),
            "start": {k: start.get(k) for k in fields},
            "middle": {k: middle.get(k) for k in fields},
            "end": {k: end.get(k) for k in fields},
            "seconds_middle_to_end": round(end["t"] - middle["t"], 1),
        }
    return out


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"soak of {meta['seconds']:g} s at interval {meta['interval']:g} s, worker 1 recycled every "
        f"{meta['recycle']:g} s (Python {meta['python']}, {meta['cpus']} CPUs)",
        f"  {'run':<10} {'process':<8} {'measure':<24} {'start':>12} {'middle':>12} {'end':>12} {'middle->end':>12}",
    ]
    for name, roles in results["runs"].items():
        for role, r in roles.items():
            for field in r["start"]:
                if field in ("samples", "leakwatch_lines", "measure_seconds"):
                    continue
                values = [r[at].get(field) for at in ("start", "middle", "end")]
                if None in values:
                    continue
                scale, unit = (MIB, " MiB") if field in ("rss", "history_bytes", "leakwatch_traced_bytes") else (1, "")
                shown = [f"{v / scale:,.2f}{unit}" if scale > 1 else f"{v:,}" for v in values]
                change = (values[2] - values[1]) / scale
                lines.append(
                    f"  {name:<10} {role:<8} {field:<24} {shown[0]:>12} {shown[1]:>12} {shown[2]:>12} "
                    + (f"{change:>+11.2f}{unit.strip()[:1]}" if scale > 1 else f"{change:>+12,.0f}")
                )
    lines.append("  load:")
    for what, s in sorted(results["load"].items()):
        lines.append(f"    {what:<22} {s['statuses']}  slowest 200 in {s['slowest_ok_seconds']:.3f} s")
    lines.append(f"  exit codes: {results['exit_codes']}")
    return "\n".join(lines)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
