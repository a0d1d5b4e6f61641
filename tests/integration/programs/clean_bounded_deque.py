"""Recent-messages buffer: a deque with maxlen, appended on every request.

Each request appends a few ``Message`` objects to a
``collections.deque(maxlen=2000)``; once full, each append silently drops the
oldest. Several messages per request fill it within the first ~1 s.

LEAKS: no. Message count is 2000 from ~1 s on.

EXPECT: none
"""

from __future__ import annotations

import os
import time
from collections import deque

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
MAX_MESSAGES = 2000
# Enough per request that the deque is full well inside the warm-up window.
MESSAGES_PER_REQUEST = 8


class Message:
    """One chat/log message kept for the "recent activity" view."""

    def __init__(self, request_id: int, index: int) -> None:
        self.request_id = request_id
        self.text = f"message {index} of request {request_id}"


def handle_request(recent: deque[Message], request_id: int) -> int:
    recent.extend(Message(request_id, i) for i in range(MESSAGES_PER_REQUEST))
    return len(recent)


def main() -> int:
    recent: deque[Message] = deque(maxlen=MAX_MESSAGES)
    deadline = time.monotonic() + RUN_SECONDS
    request_id = 0
    while time.monotonic() < deadline:
        handle_request(recent, request_id)
        request_id += 1
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
