"""Accumulate-and-flush: a sawtooth that never trends upwards.

Each request appends a few ``Record`` objects to a write buffer; every ~1 s
(jittered 0.8-1.2 s) the buffer is "written out" and cleared. The live
``Record`` count rises to ~2000 and drops to zero about once a second, for the
whole run.

The jitter is deliberate: with an exact 1.0 s period, a sampler ticking every
1 s plus a few ms would see the phase drift and read a slowly rising count,
an aliasing artefact rather than a property of the program.

LEAKS: no. Bounded sawtooth with a ~1 s period.

EXPECT: none
"""

from __future__ import annotations

import os
import random
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
FLUSH_INTERVAL_SECONDS = 1.0
FLUSH_JITTER_SECONDS = 0.2
RECORDS_PER_REQUEST = 5


class Record:
    """One buffered log/metrics record awaiting a batched write."""

    def __init__(self, request_id: int, index: int) -> None:
        self.request_id = request_id
        self.index = index
        self.line = f"{request_id},{index},ok"


def flush(buffer: list[Record]) -> int:
    written = sum(len(record.line) for record in buffer)
    buffer.clear()
    return written


def handle_request(buffer: list[Record], request_id: int) -> None:
    buffer.extend(Record(request_id, i) for i in range(RECORDS_PER_REQUEST))


def main() -> int:
    buffer: list[Record] = []
    rng = random.Random(13)
    started = time.monotonic()
    deadline = started + RUN_SECONDS
    next_flush = started + FLUSH_INTERVAL_SECONDS
    request_id = 0
    while (now := time.monotonic()) < deadline:
        handle_request(buffer, request_id)
        request_id += 1
        if now >= next_flush:
            flush(buffer)
            next_flush += FLUSH_INTERVAL_SECONDS + rng.uniform(-FLUSH_JITTER_SECONDS, FLUSH_JITTER_SECONDS)
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
