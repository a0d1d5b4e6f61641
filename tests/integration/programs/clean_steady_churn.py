"""Heavy steady churn with no retention.

Each request builds a ``Request`` object, parses headers into dicts, splits
strings into lists, renders a response string, and drops all of it. Lots of
allocation, nothing survives the request.

LEAKS: no.

EXPECT: none
"""

from __future__ import annotations

import json
import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002


class Request:
    """A parsed HTTP-ish request; lives only for one iteration."""

    def __init__(self, request_id: int, raw: str) -> None:
        self.request_id = request_id
        head, _, body = raw.partition("\n\n")
        lines = head.split("\n")
        self.method, self.path = lines[0].split(" ", 1)
        self.headers = dict(line.split(": ", 1) for line in lines[1:])
        self.body = body


def render_raw(request_id: int) -> str:
    headers = "\n".join(f"X-Header-{i}: value-{request_id}-{i}" for i in range(10))
    body = json.dumps({"id": request_id, "items": list(range(20))})
    return f"GET /orders/{request_id}\n{headers}\n\n{body}"


def handle_request(request_id: int) -> int:
    request = Request(request_id, render_raw(request_id))
    payload = json.loads(request.body)
    words = [word.upper() for word in request.path.split("/") if word]
    response = {
        "path": request.path,
        "words": words,
        "sum": sum(payload["items"]),
        "headers": len(request.headers),
    }
    return len(json.dumps(response))


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
