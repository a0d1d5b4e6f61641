"""Every test starts as the last one found the process: no watcher of an earlier test still
samples, and tracemalloc traces only if it did before (a watcher's tracing window, or a test
that started tracing, ends with its test)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from leakwatch import watcher as watcher_module


@pytest.fixture(autouse=True)
def nothing_outlives_its_test() -> Iterator[None]:
    tracing = tracemalloc.is_tracing()
    yield
    for left in list(watcher_module._FORK_WATCHERS):
        left.stop()
    if tracemalloc.is_tracing() and not tracing:
        tracemalloc.stop()
