"""An ASGI app with one leaking endpoint, for uvicorn and gunicorn's uvicorn workers: /leak
files Sessions in a module list that is never pruned; every path answers with the worker's pid."""

from __future__ import annotations

import os


class Session:
    def __init__(self, n: int) -> None:
        self.n = n
        self.payload = [n] * 4


_sessions: list[Session] = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/leak":
        _sessions.extend(Session(i) for i in range(20))
    body = f"{os.getpid()}\n".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
