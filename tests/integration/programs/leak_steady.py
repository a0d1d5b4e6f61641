"""Session store that never evicts: a steady, linear leak.

Every request creates a ``Session`` (with a small dict of fields) and stores it
in the module-level ``_sessions`` dict keyed by the request counter. Nothing is
ever removed, so ``Session`` instances grow by one per request (roughly
400/s at the default pacing) for the whole run.

LEAKS: yes, steadily from the first request on.

EXPECT: type=__main__.Session
HOLDER: module __main__ ._sessions -> dict
EXPECT: site=LEAK-SITE
"""

from __future__ import annotations

import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core, so the
# detector is tested against a realistic, mostly idle service.
PACE_SECONDS = 0.002

_sessions: dict[int, Session] = {}


class Session:
    """One logged-in user's state; ``fields`` is owned by the session."""

    def __init__(self, session_id: int, fields: dict[str, object]) -> None:
        self.session_id = session_id
        # Stored, not copied, so all of a session's memory is allocated on the
        # caller's line and a site probe can attribute it there.
        self.fields = fields


def handle_request(request_id: int) -> int:
    now = time.time()
    # One short line (safe from the formatter) so the session's memory is
    # attributed to it as a single allocation site.
    session = Session(request_id, {"user": f"u{request_id}", "at": now})  # LEAK-SITE
    # The bug under test: sessions are registered but logout never deletes them.
    _sessions[request_id] = session
    return len(session.fields)


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
