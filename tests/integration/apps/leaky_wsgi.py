"""A WSGI app with one leaking endpoint, for gunicorn: /leak files Sessions in a module list
that is never pruned; /ok allocates and frees; /pid says which worker answered."""

from __future__ import annotations

import os


class Session:
    def __init__(self, n: int) -> None:
        self.n = n
        self.payload = [n] * 4


_sessions: list[Session] = []


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/leak":
        _sessions.extend(Session(i) for i in range(20))
    elif path == "/ok":
        scratch = [Session(i) for i in range(20)]
        del scratch
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
