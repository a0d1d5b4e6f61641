"""A stress program for metric cardinality: N distinct types and N distinct allocation sites,
every one of them growing, watched by leakwatch (tracing in windows, as by default).

    python tests/bench/many_growing.py --types 10000 --sites 10000

It prints `serving HOST:PORT` once leakwatch's server is up, then grows until killed. Each
type's module name is long, so label truncation is exercised too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import leakwatch  # noqa: E402

MODULE = "stress." + "a_rather_long_package_name." * 6 + "models"


def make_types(n: int) -> list[type]:
    return [type(f"Growing{i:05d}", (), {"__module__": MODULE}) for i in range(n)]


def make_sites(n: int, directory: str) -> list:
    """n functions, each on its own line of a real file, each allocating a bytearray: n sites."""
    path = os.path.join(directory, "generated_sites.py")
    source = "".join(f"def site{i}(keep):\n    keep.append(bytearray(48))\n" for i in range(n))
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    namespace: dict = {}
    exec(compile(source, path, "exec"), namespace)
    return [namespace[f"site{i}"] for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--per-second", type=float, default=1.0, help="new objects per type and per site each second")
    args = parser.parse_args()
    watcher = leakwatch.start(
        port=0,
        interval=0.2,
        warmup=1.0,
        window=3.0,
        trace_window=3.0,
        tracemalloc="auto",
        min_growth_objects=2,
        min_growth_bytes=128,
        log_suspects=False,
    )
    host, port = watcher.server_address
    types = make_types(args.types)
    with tempfile.TemporaryDirectory() as tmp:
        sites = make_sites(args.sites, tmp)
        kept: list[object] = []
        kept_bytes: list[bytearray] = []
        print(f"serving {host}:{port}", flush=True)
        step = 0.1
        share = max(1, int(len(types) * args.per_second * step))
        i = 0
        while True:
            started = time.monotonic()
            for j in range(i, i + share):
                kept.append(types[j % len(types)]())
                sites[j % len(sites)](kept_bytes)
            i += share
            time.sleep(max(0.0, step - (time.monotonic() - started)))


if __name__ == "__main__":
    raise SystemExit(main())
