"""A flood of graph requests against leakwatch's own server, with a scraper beside it.

Starts a steadily leaking program (tests/integration/programs/leak_steady.py) under
`leakwatch run` with graphs on, then has `--clients` clients ask for the graph of its leaking
type back to back for `--seconds` (ignoring Retry-After, as a hostile or
broken client would), while /metrics is scraped once a second. Reports what the clients got,
how long they waited, the scrapes' statuses and latency, and the CPU the served process spent.

    python tests/bench/bench_flood.py                  # 200 clients for 60 s
    python tests/bench/bench_flood.py --clients 20 --seconds 10
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import psutil

ROOT = Path(__file__).resolve().parent.parent.parent
PROGRAM = ROOT / "tests" / "integration" / "programs" / "leak_steady.py"


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", help="also write the figures there")
    args = parser.parse_args(argv)
    results = flood(args.clients, args.seconds)
    print(render(results), file=out)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


def flood(clients: int, seconds: float) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env.update(PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p), SCENARIO_SECONDS="100000")
    command = [sys.executable, "-m", "leakwatch", "run", "--quiet", "-o", f"port={port}", "-o", "graphs=true"]
    process = subprocess.Popen([*command, "--", sys.executable, str(PROGRAM)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/metrics")
        served = psutil.Process(process.pid)
        cpu_before = _cpu(served)
        graphs, scrapes = _load(base + "/api/graph?type=__main__.Session&samples=32", base + "/metrics", clients, seconds)
        cpu = _cpu(served) - cpu_before
    finally:
        process.terminate()
        process.wait(30)
    waits = sorted(took for _, _, took in graphs)
    return {
        "clients": clients,
        "seconds": seconds,
        "served_cpu_seconds": round(cpu, 2),
        "graph_requests": len(graphs),
        "graph_statuses": dict(collections.Counter(status for status, _, _ in graphs)),
        "graph_retry_after": dict(collections.Counter(retry for status, retry, _ in graphs if status == "429")),
        "graph_wait_median_seconds": round(waits[len(waits) // 2], 3) if waits else None,
        "graph_wait_max_seconds": round(waits[-1], 3) if waits else None,
        "scrapes": len(scrapes),
        "scrape_statuses": dict(collections.Counter(status for status, _ in scrapes)),
        "scrape_max_seconds": round(max((took for _, took in scrapes), default=0.0), 3),
    }


def _load(graph_url: str, metrics_url: str, clients: int, seconds: float) -> tuple[list[Any], list[Any]]:
    stop = time.monotonic() + seconds
    graphs: list[tuple[str, str, float]] = []
    scrapes: list[tuple[str, float]] = []

    def client() -> None:
        while time.monotonic() < stop:
            graphs.append(_get(graph_url))

    def scraper() -> None:
        while time.monotonic() < stop:
            tick = time.monotonic()
            status, _, took = _get(metrics_url)
            scrapes.append((status, took))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

    threads = [threading.Thread(target=client) for _ in range(clients)] + [threading.Thread(target=scraper)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return graphs, scrapes


def _get(url: str) -> tuple[str, str, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            r.read()
            return str(r.status), "", time.monotonic() - started
    except urllib.error.HTTPError as e:
        return str(e.code), e.headers.get("Retry-After", ""), time.monotonic() - started
    except OSError as e:
        return type(e).__name__, "", time.monotonic() - started


def _wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _get(url)[0] == "200":
            return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:g} s")


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of `leakwatch run` and the program it runs."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def render(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{r['clients']} clients asking for a graph back to back for {r['seconds']:g} s, and a scraper at 1 Hz",
            f"  graph requests  {r['graph_requests']:,}: {r['graph_statuses']}; Retry-After given {r['graph_retry_after']}",
            f"  graph waits     median {r['graph_wait_median_seconds']} s, longest {r['graph_wait_max_seconds']} s",
            f"  scrapes         {r['scrapes']}: {r['scrape_statuses']}; slowest {r['scrape_max_seconds']} s",
            f"  served process  {r['served_cpu_seconds']} CPU-seconds in {r['seconds']:g} s",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
