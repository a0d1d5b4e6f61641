"""A FastAPI app with one leaking endpoint, for `fastapi run`: /leak files Sessions in a module
list that is never pruned; every path answers with the worker's pid."""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


class Session:
    def __init__(self, n: int) -> None:
        self.n = n
        self.payload = [n] * 4


_sessions: list[Session] = []


@app.get("/leak", response_class=PlainTextResponse)
def leak() -> str:
    _sessions.extend(Session(i) for i in range(20))
    return f"{os.getpid()}\n"


@app.get("/pid", response_class=PlainTextResponse)
def pid() -> str:
    return f"{os.getpid()}\n"
