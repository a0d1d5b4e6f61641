"""A leak inside a real library: one logging.Logger per request.

Every request calls ``logging.getLogger(f"app.request.{request_id}")`` with a
unique name. ``logging.Logger.manager.loggerDict`` keeps every logger it ever
created, forever, so ``logging.Logger`` instances (and their handler lists and
level caches) grow by one per request (~400/s). A classic real-world leak.

LEAKS: yes, one Logger per request, retained by the logging module.

EXPECT: type=logging.Logger
HOLDER: .loggerDict -> dict
"""

from __future__ import annotations

import logging
import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002


def handle_request(request_id: int) -> int:
    # The bug under test: a per-request logger name. getLogger never forgets.
    logger = logging.getLogger(f"app.request.{request_id}")
    # Below the default WARNING level: nothing is emitted, but the level
    # check fills the logger's cache like real request logging would.
    logger.debug("handling request %d", request_id)
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
