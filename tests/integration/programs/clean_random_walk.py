"""A working set whose size random-walks around a fixed mean.

The service keeps a working set of ``Item`` objects, filled to 5000 at start.
Each request adds or removes a random number (0-50) of items; the chance of
adding falls as the set grows past the mean and rises as it shrinks, and a hard
clamp keeps it within +-30%. Over any short window the size can look like it
is trending, but it never drifts away.

LEAKS: no. Item count stays within 3500..6500 (mean 5000).

EXPECT: none
"""

from __future__ import annotations

import os
import random
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
MEAN_ITEMS = 5000
MAX_STEP = 50
# Mean reversion strength: at +-30% the walk adds with probability ~5%/95%.
PULL = 1.5
LOW, HIGH = int(MEAN_ITEMS * 0.7), int(MEAN_ITEMS * 1.3)


class Item:
    """One element of the working set."""

    def __init__(self, item_id: int) -> None:
        self.item_id = item_id
        self.label = f"item-{item_id}"


def step(items: list[Item], rng: random.Random, next_id: int) -> int:
    size = len(items)
    add_probability = 0.5 - PULL * (size - MEAN_ITEMS) / MEAN_ITEMS
    count = rng.randint(0, MAX_STEP)
    if rng.random() < add_probability:
        count = min(count, HIGH - size)
        items.extend(Item(next_id + i) for i in range(count))
        return next_id + count
    for _ in range(min(count, size - LOW)):
        # Swap-remove a random item: O(1), and removal order is realistic.
        index = rng.randrange(len(items))
        items[index] = items[-1]
        items.pop()
    return next_id


def main() -> int:
    rng = random.Random(11)
    items = [Item(i) for i in range(MEAN_ITEMS)]
    next_id = MEAN_ITEMS
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        next_id = step(items, rng, next_id)
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
