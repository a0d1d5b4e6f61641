"""Bounded time series per (kind, key): the only state the sampler thread keeps between ticks.

Memory is bounded whatever the run time and the number of keys:

- each series holds at most `points` points: the newest half raw, the older samples folded
  into equal-time buckets that keep the lowest and highest value they hold (`lo`, `hi`), so
  the floor a leak raises and the peaks a sawtooth makes both survive downsampling;
- each kind tracks at most `max_series` keys: the largest values, plus every key the caller
  protects (current suspects and candidates); a new key displaces the smallest unprotected one
  only when it is bigger.

Values live in `array('d')` (8 bytes a value); the census leaves out the arrays this history
holds (`own_objects`).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Collection, Iterator, Mapping

from leakwatch.model import Sample

# Kinds whose keys vanish from a sample when nothing is alive: an absent key reads as zero.
ZERO_WHEN_ABSENT = frozenset({"type", "site", "site_blocks"})


class Series:
    """Timestamps and (lo, hi) values of one key, oldest first, in at most `capacity` points.

    The newest half are raw samples. Older samples are folded into an archive of equal-time
    buckets (each keeps the min and max of what it holds, and the time of its latest sample);
    when the archive fills, neighbouring buckets merge and the bucket width doubles. So the
    whole run stays covered at an even resolution, and the recent window stays sharp.
    """

    __slots__ = ("t", "lo", "hi", "capacity", "archived", "width", "bucket_start")

    def __init__(self, capacity: int) -> None:
        self.t = array("d")
        self.lo = array("d")
        self.hi = array("d")
        self.capacity = max(8, capacity)
        self.archived = 0  # the first `archived` points are buckets, the rest raw samples
        self.width = 0.0
        self.bucket_start = 0.0

    def __len__(self) -> int:
        return len(self.t)

    def append(self, t: float, value: float) -> None:
        while len(self.t) >= self.capacity:
            self._fold_oldest_raw()
        self.t.append(t)
        self.lo.append(value)
        self.hi.append(value)

    def _fold_oldest_raw(self) -> None:
        i = self.archived
        t = self.t[i]
        if i > 0 and t - self.bucket_start < self.width:
            # Same bucket as the last archived point: merge into it.
            self.t[i - 1] = t
            self.lo[i - 1] = min(self.lo[i - 1], self.lo[i])
            self.hi[i - 1] = max(self.hi[i - 1], self.hi[i])
            del self.t[i], self.lo[i], self.hi[i]
        else:
            self.archived += 1
            self.bucket_start = t
        if self.archived > self.capacity // 2:
            self._merge_archive()

    def _merge_archive(self) -> None:
        """Merge archived buckets pairwise and double the bucket width."""
        n = self.archived & ~1
        t, lo, hi = self.t, self.lo, self.hi
        span = t[n - 1] - t[0]
        new_t = array("d", t[1:n:2])
        new_lo = array("d", map(min, lo[0:n:2], lo[1:n:2]))
        new_hi = array("d", map(max, hi[0:n:2], hi[1:n:2]))
        new_t.extend(t[n:])
        new_lo.extend(lo[n:])
        new_hi.extend(hi[n:])
        self.t, self.lo, self.hi = new_t, new_lo, new_hi
        self.archived = n // 2 + (self.archived - n)
        self.width = max(2 * self.width, 2 * span / max(1, n - 1))
        self.bucket_start = self.t[self.archived - 1] if self.archived else 0.0

    def last(self) -> float:
        return self.lo[-1] if self.lo else 0.0

    def since(self, t0: float) -> int:
        """Index of the first point at or after `t0`."""
        return bisect.bisect_left(self.t, t0)

    def nbytes(self) -> int:
        return sum(a.itemsize * a.buffer_info()[1] for a in (self.t, self.lo, self.hi))


class History:
    """Series per kind and key, bounded in points and keys. Not thread-safe: one writer."""

    def __init__(self, max_series: int = 256, points: int = 128) -> None:
        self.max_series = max_series
        self.points = points
        self.start: float | None = None
        self.last_t: float | None = None
        self.samples = 0
        self._kinds: dict[str, dict[str, Series]] = {}

    def add(self, sample: Sample, protected: Collection[tuple[str, str]] = ()) -> None:
        """Append one sample; `protected` (kind, key) pairs are never evicted."""
        if self.start is None:
            self.start = sample.t
        self.last_t = sample.t
        self.samples += 1
        for kind, values in sample.values.items():
            self._add_kind(kind, sample.t, values, protected)

    def _add_kind(self, kind: str, t: float, values: Mapping[str, float], protected: Collection[tuple[str, str]]) -> None:
        table = self._kinds.setdefault(kind, {})
        for key, series in table.items():
            value = values.get(key)
            if value is not None:
                series.append(t, value)
            elif kind in ZERO_WHEN_ABSENT:
                series.append(t, 0.0)
        newcomers = [(v, k) for k, v in values.items() if k not in table]
        if not newcomers:
            return
        room = self.max_series - len(table)
        newcomers.sort(reverse=True)
        for value, key in newcomers[: max(room, 0)]:
            self._new_series(table, key, t, value)
        rest = newcomers[max(room, 0) :]
        if rest:
            self._displace(kind, table, rest, t, protected)

    def _displace(
        self,
        kind: str,
        table: dict[str, Series],
        newcomers: list[tuple[float, str]],
        t: float,
        protected: Collection[tuple[str, str]],
    ) -> None:
        """Let the biggest newcomers displace the smallest unprotected series."""
        smallest = sorted((s.hi[-1], k) for k, s in table.items() if (kind, k) not in protected)
        for (value, key), (old_value, old_key) in zip(newcomers, smallest, strict=False):
            if value <= old_value:
                break
            del table[old_key]
            self._new_series(table, key, t, value)

    def _new_series(self, table: dict[str, Series], key: str, t: float, value: float) -> None:
        series = Series(self.points)
        series.append(t, value)
        table[key] = series

    def kind(self, kind: str) -> Mapping[str, Series]:
        return self._kinds.get(kind, {})

    def get(self, kind: str, key: str) -> Series | None:
        return self._kinds.get(kind, {}).get(key)

    def reset(self, kind: str, key: str | None = None) -> None:
        """Forget a kind (or one key of it): a new tracing window starts from zero."""
        if key is None:
            self._kinds.pop(kind, None)
        else:
            self._kinds.get(kind, {}).pop(key, None)

    def __iter__(self) -> Iterator[tuple[str, str, Series]]:
        for kind, table in self._kinds.items():
            for key, series in table.items():
                yield kind, key, series

    def series_count(self) -> int:
        return sum(len(table) for table in self._kinds.values())

    def own_objects(self) -> dict[str, int]:
        """What this history holds, for the probes to leave out: gc-tracked objects by type key,
        and `py_blocks`, the interpreter blocks (each series: itself, three arrays and their
        buffers, and its slot in a dict)."""
        n = self.series_count()
        return {"array.array": 3 * n, "py_blocks": 8 * n}

    def nbytes(self) -> int:
        """Bytes held in point arrays (the part that could grow; it is bounded)."""
        return sum(s.nbytes() for _, _, s in self)
