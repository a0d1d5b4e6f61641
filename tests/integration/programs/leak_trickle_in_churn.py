"""A slow trickle hidden in heavy churn of the same type.

Every request builds ~300 ``Event`` objects in a temporary list that is dropped
at the end of the request (churn), and keeps exactly one of them in the
module-level ``_audit_log`` list forever. The live ``Event`` count therefore
grows by one per request (~400/s) while ~120,000 ``Event`` objects per second
are created and freed around it.

LEAKS: yes, slowly (one Event per request) under heavy same-type churn.

EXPECT: type=__main__.Event
HOLDER: module __main__ ._audit_log -> list
"""

from __future__ import annotations

import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
EVENTS_PER_REQUEST = 300

_audit_log: list[Event] = []


class Event:
    """A parsed input event; most are discarded once handled."""

    def __init__(self, request_id: int, index: int) -> None:
        self.request_id = request_id
        self.index = index
        self.important = index == 0


def handle_request(request_id: int) -> int:
    events = [Event(request_id, i) for i in range(EVENTS_PER_REQUEST)]
    kept = [event for event in events if event.important]
    # The bug under test: the audit log is meant to be flushed to disk and
    # cleared, but nothing ever clears it.
    _audit_log.extend(kept)
    return len(events)


def main() -> int:
    deadline = time.monotonic() + RUN_SECONDS
    request_id = 0
    while time.monotonic() < deadline:
        handle_request(request_id)
        request_id += 1
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
