"""An LRU cache that fills quickly and then stays at its bound.

An ``OrderedDict`` LRU cache of at most 5000 ``CacheEntry`` objects. During
the first second, requests warm it with new keys on a wall-clock schedule so
it is full after ~1 s whatever the machine's speed. From then on keys are drawn
at random from a fixed key space of 6000, so misses evict the least recently
used entry: constant churn, constant size.

LEAKS: no. CacheEntry count plateaus at 5000 after ~1 s.

EXPECT: none
"""

from __future__ import annotations

import os
import random
import time
from collections import OrderedDict

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
MAX_ENTRIES = 5000
KEY_SPACE = 6000  # a little larger than the cache, so it keeps evicting
FILL_SECONDS = 1.0
LOOKUPS_PER_REQUEST = 10


class CacheEntry:
    """A cached, computed value."""

    def __init__(self, key: int) -> None:
        self.key = key
        self.value = f"value-{key}" * 4
        self.hits = 0


class LRUCache:
    """Least-recently-used cache holding at most ``max_entries`` entries."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: int) -> CacheEntry:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            entry.hits += 1
            return entry
        entry = CacheEntry(key)
        self._entries[key] = entry
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry


def warm_up(cache: LRUCache, elapsed: float) -> None:
    # Keys 0..n-1 are all distinct, so the cache holds exactly n entries.
    target = min(cache.max_entries, int(cache.max_entries * elapsed / FILL_SECONDS) + 1)
    for key in range(len(cache), target):
        cache.get(key)


def handle_request(cache: LRUCache, rng: random.Random) -> int:
    total = 0
    for _ in range(LOOKUPS_PER_REQUEST):
        total += len(cache.get(rng.randrange(KEY_SPACE)).value)
    return total


def main() -> int:
    cache = LRUCache(MAX_ENTRIES)
    rng = random.Random(7)
    started = time.monotonic()
    deadline = started + RUN_SECONDS
    while (now := time.monotonic()) < deadline:
        if len(cache) < MAX_ENTRIES:
            warm_up(cache, now - started)
        else:
            handle_request(cache, rng)
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
