"""A small built-in service for `leakwatch demo`: one real leak and one bounded cache.

Each request builds a `Session` and files it in a module-level registry that is never pruned
(the leak), looks up a `CacheEntry` in an LRU cache capped at `CACHE_SIZE` entries (bounded:
it fills, then stays full), and churns through temporary objects like any request handler.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import OrderedDict

CACHE_SIZE = 256


class Session:
    """What a request leaves behind: never removed from `_sessions`."""

    __slots__ = ("request_id", "user", "attributes")

    def __init__(self, request_id: int, user: str) -> None:
        self.request_id = request_id
        self.user = user
        self.attributes = {"path": f"/orders/{request_id}", "agent": "demo-client/1.0"}


class CacheEntry:
    """A value in the bounded LRU cache."""

    __slots__ = ("key", "rendered")

    def __init__(self, key: int) -> None:
        self.key = key
        self.rendered = f"<li>product {key}</li>" * 4


class DemoService:
    """Serves synthetic requests on a background thread until `stop()`."""

    def __init__(self, requests_per_second: float = 200.0, seed: int = 7) -> None:
        self.period = 1.0 / requests_per_second
        self.sessions: dict[int, Session] = {}
        self.cache: OrderedDict[int, CacheEntry] = OrderedDict()
        self.handled = 0
        self._random = random.Random(seed)
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="demo-service", daemon=True)

    def start(self) -> DemoService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _serve(self) -> None:
        while not self._stop.wait(self.period):
            self.handle_request()

    def handle_request(self) -> str:
        request_id = next(self._ids)
        self.sessions[request_id] = Session(request_id, f"user{request_id % 97}")
        entry = self._cached(self._random.randrange(1000))
        scratch = [{"line": i, "text": entry.rendered} for i in range(20)]
        self.handled += 1
        return "".join(str(item["text"]) for item in scratch[:2])

    def _cached(self, key: int) -> CacheEntry:
        entry = self.cache.get(key)
        if entry is None:
            entry = self.cache[key] = CacheEntry(key)
            if len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        return entry
