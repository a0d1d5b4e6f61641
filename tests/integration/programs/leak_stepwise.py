"""Batch importer that keeps every batch: a stepwise leak.

Ordinary requests only churn short-lived objects. Every ~1.5 s one request
imports a batch of 2000 ``Job`` objects and appends them to the module-level
``_processed`` list, which is never trimmed. Between bursts nothing grows, so
the ``Job`` count is a staircase (+2000 per step, ~1300/s on average).

LEAKS: yes, in steps every ~1.5 s.

EXPECT: type=__main__.Job
HOLDER: module __main__ ._processed -> list
"""

from __future__ import annotations

import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
BATCH_INTERVAL_SECONDS = 1.5
BATCH_SIZE = 2000

_processed: list[Job] = []


class Job:
    """One imported unit of work."""

    def __init__(self, job_id: int, payload: str) -> None:
        self.job_id = job_id
        self.payload = payload
        self.done = False


def import_batch(batch_number: int) -> None:
    batch = [Job(batch_number * BATCH_SIZE + i, f"job-{i}") for i in range(BATCH_SIZE)]
    for job in batch:
        job.done = True
    # The bug under test: the "audit trail" of processed jobs is never trimmed.
    _processed.extend(batch)


def handle_request(request_id: int) -> int:
    # Steady-state work between bursts: allocated and dropped in the request.
    query = {"id": request_id, "fields": [f"f{i}" for i in range(8)]}
    return len(query["fields"])


def main() -> int:
    started = time.monotonic()
    deadline = started + RUN_SECONDS
    next_batch = started + BATCH_INTERVAL_SECONDS
    batch_number = 0
    request_id = 0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_batch:
            import_batch(batch_number)
            batch_number += 1
            next_batch += BATCH_INTERVAL_SECONDS
        handle_request(request_id)
        request_id += 1
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
