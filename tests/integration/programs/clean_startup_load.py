"""A big table loaded once at start-up, then served read-only.

The first ~1.5 s load 200,000 ``Row`` objects in pages (as if streamed from a
database), with short pauses between pages. After that, requests only look rows
up and build short-lived response dicts and strings: heavy churn, no growth.
The large jump happens entirely inside the detector's warm-up window.

LEAKS: no. Row count is 200,000 from ~1.5 s to the end.

EXPECT: none
"""

from __future__ import annotations

import os
import random
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
TABLE_ROWS = 200_000
PAGE_ROWS = 4_000
# 50 pages with this pause plus build time lands the load at ~1.5 s.
PAGE_PAUSE_SECONDS = 0.02
LOOKUPS_PER_REQUEST = 20


class Row:
    """One row of the reference table; slotted as a real loader would be."""

    __slots__ = ("row_id", "name", "price", "tags")

    def __init__(self, row_id: int, name: str, price: float, tags: tuple[str, ...]) -> None:
        self.row_id = row_id
        self.name = name
        self.price = price
        self.tags = tags


def load_table() -> dict[int, Row]:
    tag_choices = (("a",), ("b",), ("a", "b"), ())
    table: dict[int, Row] = {}
    for start in range(0, TABLE_ROWS, PAGE_ROWS):
        for row_id in range(start, start + PAGE_ROWS):
            table[row_id] = Row(row_id, f"product-{row_id}", row_id * 0.01, tag_choices[row_id % 4])
        time.sleep(PAGE_PAUSE_SECONDS)
    return table


def handle_request(table: dict[int, Row], rng: random.Random) -> int:
    rows = [table[rng.randrange(TABLE_ROWS)] for _ in range(LOOKUPS_PER_REQUEST)]
    response = {"items": [{"id": r.row_id, "name": r.name, "price": f"{r.price:.2f}"} for r in rows]}
    return len(response["items"])


def main() -> int:
    deadline = time.monotonic() + RUN_SECONDS
    table = load_table()
    rng = random.Random(3)
    while time.monotonic() < deadline:
        handle_request(table, rng)
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
