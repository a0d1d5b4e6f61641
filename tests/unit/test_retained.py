"""Retained size on real objects: what a leak's objects hold, measured against tracemalloc's
count of the bytes allocated to build them."""

from __future__ import annotations

import sys
import tracemalloc
import types

import pytest

from leakwatch.refgraph.retained import measure


class Holder:
    def __init__(self, n: int, payload: object) -> None:
        self.n = n
        self.payload = payload


def test_objects_each_with_a_10_kb_payload_are_estimated_within_30_percent_of_what_they_allocated():
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [Holder(i, bytearray(10_000)) for i in range(3000)]
        truth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    sizing = measure("type", f"{__name__}.Holder", samples=32)
    assert sizing is not None and sizing.count == len(kept) and sizing.samples == 32
    assert abs(sizing.total - truth) <= 0.3 * truth, (sizing, truth)
    assert sizing.error_per_object < 0.1 * sizing.per_object
    assert 0 < sizing.seconds < 10


def test_a_payload_all_of_them_share_is_counted_once():
    def build() -> list[Holder]:
        payload = bytearray(1_000_000)  # held by the objects alone, not by a module
        return [Holder(i, payload) for i in range(2000)]

    kept = build()
    sizing = measure("type", f"{__name__}.Holder", samples=32)
    assert sizing is not None and sizing.count == len(kept)
    assert 1_000_000 <= sizing.shared < 1_100_000, sizing
    assert sizing.per_object < 1_000, sizing
    assert sizing.total < 2 * (1_000_000 + 2000 * 1_000)


def test_what_a_module_holds_anyway_is_not_the_leaks():
    module = types.ModuleType("lwconfig")
    module.settings = {str(i): "x" * 100 for i in range(10_000)}  # about 2 MB a leak points at
    sys.modules["lwconfig"] = module
    try:
        kept = [Holder(i, module.settings) for i in range(500)]
        sizing = measure("type", f"{__name__}.Holder", samples=16)
    finally:
        del sys.modules["lwconfig"]
    assert sizing is not None and sizing.count == len(kept)
    assert sizing.total < 500 * 1_000, sizing


def test_nothing_to_size_is_none():
    assert measure("type", "lwnothing.Absent") is None


@pytest.mark.parametrize("samples", [1, 2])
def test_few_samples_still_give_an_estimate_and_a_bound(samples):
    kept = [Holder(i, bytearray(1_000)) for i in range(100)]
    sizing = measure("type", f"{__name__}.Holder", samples=samples)
    assert sizing is not None and sizing.count == len(kept) and sizing.samples == samples
    assert sizing.per_object > 1_000 and sizing.error_per_object > 0
