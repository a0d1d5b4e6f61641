"""A TTL cache whose size plateaus one TTL after start.

Each request inserts a few ``Entry`` objects with a 1.0 s time-to-live and
reads a few back. Expired entries are purged on every access (oldest first,
from an insertion-ordered dict), so with a steady insertion rate the cache holds
about rate x TTL entries (~1200) from ~1 s on.

LEAKS: no. Entry count plateaus after ~1 s.

EXPECT: none
"""

from __future__ import annotations

import os
import random
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
TTL_SECONDS = 1.0
INSERTS_PER_REQUEST = 3
READS_PER_REQUEST = 3


class Entry:
    """A cached value and the monotonic time it expires at."""

    def __init__(self, value: str, expires_at: float) -> None:
        self.value = value
        self.expires_at = expires_at


class TTLCache:
    """Entries expire ``ttl_seconds`` after insertion; purged on access."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        # Keys are never re-inserted, so dict order is expiry order and the
        # purge only ever looks at the front.
        self._entries: dict[int, Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def purge(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries))
            if self._entries[oldest].expires_at > now:
                break
            del self._entries[oldest]

    def put(self, key: int, value: str, now: float) -> None:
        self.purge(now)
        self._entries[key] = Entry(value, now + self.ttl_seconds)

    def get(self, key: int, now: float) -> str | None:
        self.purge(now)
        entry = self._entries.get(key)
        return entry.value if entry is not None else None


def handle_request(cache: TTLCache, rng: random.Random, next_key: int) -> int:
    now = time.monotonic()
    for key in range(next_key, next_key + INSERTS_PER_REQUEST):
        cache.put(key, f"token-{key}", now)
    next_key += INSERTS_PER_REQUEST
    for _ in range(READS_PER_REQUEST):
        cache.get(next_key - 1 - rng.randrange(1000), now)
    return next_key


def main() -> int:
    cache = TTLCache(TTL_SECONDS)
    rng = random.Random(5)
    next_key = 0
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        next_key = handle_request(cache, rng, next_key)
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
