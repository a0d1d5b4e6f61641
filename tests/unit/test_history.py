"""History stays bounded in points and keys, keeps floors and peaks, and protects suspects."""

from __future__ import annotations

import tracemalloc

from leakwatch.history import History, Series
from leakwatch.model import Sample


def test_series_merges_old_points_keeping_min_and_max():
    s = Series(capacity=16)
    for i in range(16):
        s.append(float(i), float(i % 4 * 10))
    s.append(16.0, 5.0)
    assert len(s) <= 16
    assert min(s.lo) == 0.0 and max(s.hi) == 30.0
    assert list(s.t) == sorted(s.t)
    assert s.t[-1] == 16.0


def test_series_points_stay_bounded_forever():
    s = Series(capacity=32)
    for i in range(100_000):
        s.append(float(i), float(i))
    assert len(s) <= 32
    assert s.t[0] < 100_000 / 2  # the oldest point still reaches far back


def test_keys_are_bounded_and_biggest_kept():
    h = History(max_series=10, points=16)
    for tick in range(50):
        values = {f"t{k}": float(k) for k in range(tick * 5, tick * 5 + 40)}
        h.add(Sample(t=float(tick), values={"type": values}))
    kept = set(h.kind("type"))
    assert len(kept) == 10
    assert kept == {f"t{k}" for k in range(49 * 5 + 30, 49 * 5 + 40)}


def test_protected_keys_are_never_displaced():
    h = History(max_series=4, points=16)
    h.add(Sample(t=0.0, values={"type": {"small": 1.0, "b": 5.0, "c": 6.0, "d": 7.0}}))
    for t in range(1, 20):
        h.add(Sample(t=float(t), values={"type": {f"big{t}": 1000.0 + t}}), protected={("type", "small")})
    assert "small" in h.kind("type")


def test_absent_type_reads_as_zero():
    h = History()
    h.add(Sample(t=0.0, values={"type": {"a": 3.0}}))
    h.add(Sample(t=1.0, values={"type": {}}))
    assert list(h.get("type", "a").lo) == [3.0, 0.0]


def test_own_objects_count_the_arrays():
    h = History()
    h.add(Sample(t=0.0, values={"type": {"a": 1.0, "b": 2.0}, "process": {"rss": 1.0}}))
    assert h.own_objects() == {"array.array": 9, "py_blocks": 24}


def test_memory_is_flat_over_ten_thousand_samples_with_churning_keys():
    h = History(max_series=64, points=64)

    def feed(start: int, count: int) -> None:
        for i in range(start, start + count):
            # Keys come and go, as types and sites do in a real service.
            values = {f"k{(i * 7 + j) % 500}": float(j + i % 13) for j in range(100)}
            h.add(Sample(t=float(i), values={"type": values, "process": {"rss": 1e6 + i}}))

    feed(0, 2000)
    tracemalloc.start()
    try:
        feed(2000, 1000)
        after_3k, _ = tracemalloc.get_traced_memory()
        feed(3000, 7000)
        after_10k, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert h.samples == 10_000
    assert h.series_count() <= 64 + 1
    assert after_10k - after_3k < 64 * 1024
