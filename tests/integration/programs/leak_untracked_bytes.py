"""A leak the gc type census cannot see: bytes payloads in one list.

Every request appends a fresh 2 KB ``bytes`` payload to the single
module-level ``_payloads`` list. ``bytes`` objects are not tracked by the
cyclic gc and the number of gc-tracked objects stays flat (it is one list),
so only allocation-site tracing (tracemalloc) or process memory reveal it.
About 0.8 MB/s at ~400 requests/s.

LEAKS: yes, ~2 KB of untracked bytes per request.

EXPECT: site=LEAK-SITE
HOLDER: module __main__ ._payloads -> list
"""

from __future__ import annotations

import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
PAYLOAD_BYTES = 2048

_payloads: list[bytes] = []


def handle_request(request_id: int) -> int:
    # Allocation and retention on one line, so the payload and the list's own
    # growth are attributed to the same site.
    _payloads.append(os.urandom(PAYLOAD_BYTES))  # LEAK-SITE
    return request_id


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
