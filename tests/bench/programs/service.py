"""A request-serving program for the time-to-verdict benchmark: a working set of N objects,
about half a core of request handling, a bounded cache that fills for the first minutes, and
(optionally) a steady leak of one class.

Run under `leakwatch run` at defaults; a monitor thread reads `leakwatch.suspects()` once a
second, as a user's code would, and prints one JSON line per change it sees (and one at least
every 5 s): {"t": seconds since start, "suspects": [[kind, key, sites], ...]}. Nothing here configures
leakwatch.

    python service.py --heap 300000 --leak-mib-per-min 1 --cache-fill 150 --duration 480
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import OrderedDict

# Each request takes about this much CPU, then sleeps so that the program uses `busy` of a core.
REQUEST_SECONDS = 0.004
LEAK_RECORD_BYTES = 512  # about what one LeakedRecord holds (the object, its dict, its payload)


class Customer:
    """The working set: loaded at start, read by every request, never grows."""

    def __init__(self, i: int) -> None:
        self.id = i
        self.name = f"customer-{i}"
        self.tags = [i % 7, i % 11]


class CachedPage:
    """What the bounded cache holds."""

    def __init__(self, key: int, body: str) -> None:
        self.key = key
        self.body = body


class LeakedRecord:
    """What a request leaves behind when the program leaks: filed and never removed."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n = n
        self.payload = rng.randbytes(LEAK_RECORD_BYTES - 200)  # LEAK-SITE (its payload)


class Service:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(7)
        # Each Customer is two gc-tracked objects (itself and its list; its dict is not tracked).
        self.customers = [Customer(i) for i in range(args.heap // 2)]
        self.cache: OrderedDict[int, CachedPage] = OrderedDict()
        self.cache_keys = 0
        self.leaked: list[LeakedRecord] = []
        self.started = time.monotonic()
        self.leak_per_second = args.leak_mib_per_min * 1024 * 1024 / 60 / LEAK_RECORD_BYTES

    def handle(self, now: float) -> None:
        customer = self.customers[self.rng.randrange(len(self.customers))]
        # Fill the cache with new keys until cache_fill seconds have passed, then turn it over.
        elapsed = now - self.started
        if elapsed < self.args.cache_fill:
            key = self.cache_keys
            self.cache_keys += 1
        else:
            key = self.rng.randrange(max(1, self.cache_keys))
        page = self.cache.get(key)
        if page is None:
            body = json.dumps({"id": customer.id, "name": customer.name, "tags": customer.tags, "key": key})
            page = self.cache[key] = CachedPage(key, body)
            if len(self.cache) > self.args.cache_max:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        scratch = [{"line": i, "text": page.body} for i in range(30)]
        json.dumps(scratch)
        deadline = time.perf_counter() + REQUEST_SECONDS * 0.5
        while time.perf_counter() < deadline:
            sum(i * i for i in range(200))

    def leak(self, now: float) -> None:
        due = int((now - self.started) * self.leak_per_second)
        while len(self.leaked) < due:
            self.leaked.append(LeakedRecord(len(self.leaked), self.rng))  # LEAK-SITE (the object)

    def serve(self, until: float) -> None:
        while (now := time.monotonic()) < until:
            start = time.perf_counter()
            self.handle(now)
            self.leak(now)
            spent = time.perf_counter() - start
            time.sleep(max(0.0, spent * (1 - self.args.busy) / self.args.busy))


def monitor(started: float, stop: threading.Event) -> None:
    try:
        import leakwatch
    except ImportError:
        return
    last, said = None, 0.0
    while not stop.wait(1.0):
        now = [[s.kind, s.key, list(s.sites)] for s in leakwatch.suspects()]
        t = time.monotonic() - started
        if now != last or t - said >= 5.0:  # at least every 5 s, so a reader can keep time
            print(json.dumps({"t": round(t, 1), "suspects": now}), flush=True)
            last, said = now, t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heap", type=int, default=300_000, help="gc-tracked objects in the working set")
    parser.add_argument("--leak-mib-per-min", type=float, default=1.0, help="0 for a clean program")
    parser.add_argument("--cache-fill", type=float, default=150.0, help="seconds the cache keeps filling")
    parser.add_argument("--cache-max", type=int, default=100_000, help="entries the cache holds at most")
    parser.add_argument("--busy", type=float, default=0.5, help="share of a core the requests use")
    parser.add_argument("--duration", type=float, default=480.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    service = Service(args)
    print(json.dumps({"t": round(time.monotonic() - started, 1), "ready": True}), flush=True)
    stop = threading.Event()
    watcher = threading.Thread(target=monitor, args=(started, stop), daemon=True)
    watcher.start()
    service.serve(started + args.duration)
    stop.set()
    print(
        json.dumps(
            {"t": round(time.monotonic() - started, 1), "requests_cache": len(service.cache), "leaked": len(service.leaked)}
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
