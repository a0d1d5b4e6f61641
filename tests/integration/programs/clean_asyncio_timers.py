"""An asyncio daemon whose tasks all finish: each request starts a task that waits on a timer
(asyncio.sleep) or on a reply future filed in a dict a reader task answers, then returns.
The number of pending tasks stays near the request rate times the wait, with no growth.

LEAKS: no.

EXPECT: none
"""

from __future__ import annotations

import asyncio
import os
import random
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))

_background: set[asyncio.Task] = set()
_replies: dict[int, asyncio.Future] = {}


async def wait_for_reply(request_id: int) -> int:
    if request_id % 2:
        await asyncio.sleep(random.uniform(0.1, 0.6))
        return request_id
    reply = asyncio.get_running_loop().create_future()
    _replies[request_id] = reply
    return await reply


async def reader() -> None:
    # Answers the replies that have waited long enough, as a socket reader would.
    while True:
        await asyncio.sleep(0.05)
        for request_id in [r for r in _replies if random.random() < 0.3]:
            _replies.pop(request_id).set_result(request_id)


async def main() -> int:
    rng = random.Random(7)
    answering = asyncio.create_task(reader())
    deadline = time.monotonic() + RUN_SECONDS
    request_id = 0
    while time.monotonic() < deadline:
        task = asyncio.create_task(wait_for_reply(request_id))
        _background.add(task)
        task.add_done_callback(_background.discard)
        request_id += 1
        await asyncio.sleep(rng.uniform(0.002, 0.01))
    answering.cancel()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
