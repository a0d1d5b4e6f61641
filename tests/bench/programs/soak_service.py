"""A clean pre-fork service for the soak benchmark: a master that forks two workers, keeps
worker 0 for the whole run and recycles worker 1 every `--recycle` seconds, as gunicorn's
max_requests would. Each worker serves simulated requests (objects made and dropped, a bounded
cache that turns over); nothing grows.

With `--leakwatch`, the master starts leakwatch before it forks (`prefork="master"`, serving
`--port`, graphs on) at `--interval`, and the workers sample themselves. With `--trace`, the
program traces its own allocations from the start (16 frames), so that what leakwatch's code
holds can be told apart.

The master and worker 0 each append a JSON line to `--measure` every `--every` seconds: their
RSS, pymalloc's allocated blocks, leakwatch's history bytes and gc-tracked objects, and (with
`--trace`) the bytes and blocks traced with a frame in leakwatch's package.

    python soak_service.py --leakwatch --interval 0.01 --port 10464 --measure m.jsonl --duration 3600
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import signal
import sys
import time
import tracemalloc
from collections import OrderedDict
from typing import Any

import psutil

CACHE_SIZE = 2000


class Order:
    """What a request makes and drops."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n = n
        self.lines = [rng.random() for _ in range(8)]
        self.note = f"order-{n}"


def serve(stop_at: float, rng: random.Random) -> None:
    """Requests until `stop_at`: each makes a few orders, reads and fills a bounded cache."""
    cache: OrderedDict[int, Order] = OrderedDict()
    n = 0
    while time.monotonic() < stop_at:
        for _ in range(20):
            n += 1
            orders = [Order(n, rng) for _ in range(5)]
            key = rng.randrange(CACHE_SIZE * 2)
            cache[key] = orders[0]
            cache.move_to_end(key)
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        time.sleep(0.005)


def measure(role: str, path: str) -> None:
    started = time.monotonic()
    line: dict[str, object] = {
        "t": time.time(),
        "role": role,
        "pid": os.getpid(),
        "rss": psutil.Process().memory_info().rss,
        "blocks": sys.getallocatedblocks(),
    }
    if WATCHER:
        import leakwatch

        report = WATCHER[0].report()
        line["history_bytes"] = report.history_bytes if report is not None else 0
        line["samples"] = report.samples if report is not None else 0
        line["leakwatch_objects"] = sum(1 for o in gc.get_objects() if type(o).__module__.startswith("leakwatch"))
        if tracemalloc.is_tracing():
            line.update(traced_in(os.path.dirname(leakwatch.__file__)))
    line["measure_seconds"] = round(time.monotonic() - started, 3)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def traced_in(package: str, top: int = 12) -> dict[str, object]:
    """The bytes and blocks traced with a frame in `package`, and the top lines by bytes (the
    innermost frame of the package's). One pass over the raw traces, each traceback looked at
    once: Snapshot.filter_traces matches every frame with fnmatch, minutes on a traced heap."""
    raw = tracemalloc.take_snapshot().traces._traces  # (domain, size, frames most recent first, total)
    where_of: dict[int, str | None] = {}
    by_line: dict[str, int] = {}
    size_in, blocks_in = 0, 0
    root = os.path.dirname(package)
    for _, size, frames, *_ in raw:
        key = id(frames)
        if key in where_of:
            where = where_of[key]
        else:
            where = next((f"{os.path.relpath(f, root)}:{n}" for f, n in frames if f.startswith(package)), None)
            where_of[key] = where
        if where is not None:
            size_in += size
            blocks_in += 1
            by_line[where] = by_line.get(where, 0) + size
    return {
        "leakwatch_traced_bytes": size_in,
        "leakwatch_traced_blocks": blocks_in,
        "leakwatch_lines": dict(sorted(by_line.items(), key=lambda kv: -kv[1])[:top]),
    }


def run_measured(role: str, args: argparse.Namespace, stop_at: float, rng: random.Random) -> None:
    """Serve (or, in the master, wait) and measure every `--every` seconds."""
    while time.monotonic() < stop_at:
        measure(role, args.measure)
        until = min(stop_at, time.monotonic() + args.every)
        if role == "master":
            reap_and_refork(args, until, rng)
        else:
            serve(until, rng)
    measure(role, args.measure)


CHILDREN: dict[int, int] = {}  # pid -> worker number


def fork_worker(number: int, args: argparse.Namespace, stop_at: float) -> None:
    pid = os.fork()
    if pid == 0:
        rng = random.Random(number * 7919 + os.getpid())
        try:
            if number == 0:
                run_measured("worker0", args, stop_at, rng)
            else:
                serve(min(stop_at, time.monotonic() + args.recycle), rng)
        finally:
            os._exit(0)
    CHILDREN[pid] = number


def reap_and_refork(args: argparse.Namespace, until: float, rng: random.Random) -> None:
    """The master's loop until `until`: a worker that exits is forked again (worker 1's recycling)."""
    while time.monotonic() < until:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid and pid in CHILDREN:
            number = CHILDREN.pop(pid)
            if number == 1 and time.monotonic() < STOP_AT[0] - 1:
                fork_worker(1, args, STOP_AT[0])
        time.sleep(0.1)


STOP_AT = [0.0]
WATCHER: list[Any] = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leakwatch", action="store_true")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--measure", required=True)
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--recycle", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=3600.0)
    args = parser.parse_args()
    if args.trace:
        tracemalloc.start(16)
    if args.leakwatch:
        import leakwatch

        WATCHER.append(leakwatch.start(prefork="master", interval=args.interval, port=args.port, graphs=True))
    stop_at = STOP_AT[0] = time.monotonic() + args.duration
    fork_worker(0, args, stop_at)
    fork_worker(1, args, stop_at)
    try:
        run_measured("master", args, stop_at, random.Random(1))
    finally:
        # The workers end at the same time, after a last measure (which takes a traced worker
        # seconds); one that has not ended within a minute is killed.
        deadline = time.monotonic() + 60
        while CHILDREN and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            CHILDREN.pop(pid, None)
            time.sleep(0.05)
        for pid in CHILDREN:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
