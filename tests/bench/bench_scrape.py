"""What a scrape of leakwatch's /metrics costs and weighs under a cardinality storm.

    python tests/bench/bench_scrape.py [--types 10000] [--sites 10000] [--repeat 50] [--json PATH]

Starts tests/bench/many_growing.py (that many distinct types and allocation sites, every one
growing, watched by leakwatch), waits until leakwatch has more suspects than it exports
(`leakwatch_suspects_omitted` > 0), then scrapes /metrics `--repeat` times over HTTP on
127.0.0.1, plain and gzipped, and reports:

- the scrape time (median, 95th percentile, max) as the busy host serves it (its threads and
  leakwatch's census compete for the GIL, so this is the latency Prometheus sees);
- the time to render leakwatch's collector over the storm's last report in this quiet process,
  next to the time prometheus_client takes to render its own default registry (process,
  platform and gc collectors), as a ratio;
- the size in bytes (plain and gzip) and the number of leakwatch series, against the bounds
  `exposed_series_bound` and `exposed_bytes_bound` promise for the default config.

Prints a table, writes JSON, exits 0 whatever the figures: a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest  # noqa: E402

from leakwatch.config import Config  # noqa: E402
from leakwatch.exporters.prometheus import LeakwatchCollector, exposed_bytes_bound, exposed_series_bound  # noqa: E402
from leakwatch.model import Report  # noqa: E402
from leakwatch.testing import FixedReport  # noqa: E402

PROGRAM = os.path.join(ROOT, "tests", "bench", "many_growing.py")


def scrape(url: str, compressed: bool) -> tuple[float, bytes]:
    headers = {"Accept-Encoding": "gzip"} if compressed else {}
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
        body = r.read()
    return time.perf_counter() - started, body


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def measure(types: int, sites: int, repeat: int, wait: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, PROGRAM, "--types", str(types), "--sites", str(sites)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        address = re.search(r"serving (\S+)", proc.stdout.readline()).group(1)
        url = f"http://{address}/metrics"
        deadline = time.monotonic() + wait
        omitted = 0.0
        while time.monotonic() < deadline:
            text = scrape(url, False)[1].decode()
            m = re.search(r"^leakwatch_suspects_omitted (\S+)$", text, re.M)
            omitted = float(m.group(1)) if m else 0.0
            if omitted > 0:
                break
            time.sleep(1.0)
        plain, zipped = [], []
        for _ in range(repeat):  # interleaved, so both see the same phases of the host's work
            plain.append(scrape(url, False))
            zipped.append(scrape(url, True))
        with urllib.request.urlopen(url.replace("/metrics", "/api/suspects"), timeout=60) as r:
            report = Report.from_dict(json.load(r))
    finally:
        proc.kill()
        proc.wait(10)
    body = plain[-1][1]
    lines = body.decode().splitlines(keepends=True)
    own = [line for line in lines if line.startswith(("leakwatch_", "# HELP leakwatch_", "# TYPE leakwatch_"))]
    config = Config()
    reference, render_own = [], []
    registry = CollectorRegistry()
    registry.register(LeakwatchCollector(FixedReport(config, report)))
    for _ in range(repeat):
        started = time.perf_counter()
        generate_latest(REGISTRY)
        reference.append(time.perf_counter() - started)
        started = time.perf_counter()
        generate_latest(registry)
        render_own.append(time.perf_counter() - started)
    return {
        "types": types,
        "sites": sites,
        "suspects_omitted": omitted,
        "scrape": summary([t for t, _ in plain]),
        "scrape_gzip": summary([t for t, _ in zipped]),
        "reference_default_registry": summary(reference),
        "render_leakwatch_collector": summary(render_own),
        "bytes": len(body),
        "bytes_gzip": len(zipped[-1][1]),
        "leakwatch_bytes": sum(len(line.encode()) for line in own),
        "leakwatch_series": sum(1 for line in own if not line.startswith("#")),
        "all_series": sum(1 for line in lines if not line.startswith("#")),
        "bound_series": exposed_series_bound(config),
        "bound_bytes": exposed_bytes_bound(config),
    }


def render(r: dict[str, Any]) -> str:
    ratio = r["render_leakwatch_collector"]["median_ms"] / max(r["reference_default_registry"]["median_ms"], 1e-9)
    rows = [
        f"cardinality storm: {r['types']:,} growing types, {r['sites']:,} growing sites; "
        f"{r['suspects_omitted']:.0f} suspects beyond the export cap",
        f"scrape over HTTP      median {r['scrape']['median_ms']:7.2f} ms   p95 {r['scrape']['p95_ms']:7.2f}   "
        f"max {r['scrape']['max_ms']:7.2f}",
        f"scrape, gzip          median {r['scrape_gzip']['median_ms']:7.2f} ms   p95 {r['scrape_gzip']['p95_ms']:7.2f}   "
        f"max {r['scrape_gzip']['max_ms']:7.2f}",
        f"rendered in a quiet process: leakwatch's collector on the storm's report median "
        f"{r['render_leakwatch_collector']['median_ms']:.2f} ms; prometheus_client's default registry "
        f"{r['reference_default_registry']['median_ms']:.2f} ms (ratio {ratio:.1f}x)",
        f"size                  {r['bytes']:,} B ({r['bytes_gzip']:,} B gzip); leakwatch's own {r['leakwatch_bytes']:,} B "
        f"(bound {r['bound_bytes']:,})",
        f"series                leakwatch {r['leakwatch_series']} (bound {r['bound_series']}), all {r['all_series']}",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--wait", type=float, default=120.0, help="longest wait for the suspects to pass the cap (seconds)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there")
    args = parser.parse_args(argv)
    result = measure(args.types, args.sites, args.repeat, args.wait)
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
