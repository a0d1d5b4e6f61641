"""An asyncio daemon that strands a task per request: each waits on a future that nothing
else holds, so nothing can ever set it, and the set that keeps tasks "from being collected"
(the pattern asyncio's documentation recommends) keeps every one of them pending forever.
About 150 tasks a second, with their coroutines and futures.

LEAKS: yes, one pending task (and its coroutine and future) per request.

EXPECT: type=_asyncio.Task
HOLDER: module __main__ ._background -> set
"""

from __future__ import annotations

import asyncio
import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))

_background: set[asyncio.Task] = set()


async def wait_for_reply(request_id: int) -> int:
    # The reply future was meant to be filed where a reader would set it; it never was.
    reply = asyncio.get_running_loop().create_future()
    return await reply + request_id


async def handle_request(request_id: int) -> None:
    task = asyncio.create_task(wait_for_reply(request_id))
    _background.add(task)
    task.add_done_callback(_background.discard)
    await asyncio.sleep(0)


async def main() -> int:
    deadline = time.monotonic() + RUN_SECONDS
    request_id = 0
    while time.monotonic() < deadline:
        await handle_request(request_id)
        request_id += 1
        await asyncio.sleep(0.006)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
