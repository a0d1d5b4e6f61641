"""leakwatch's endpoints as a WSGI app and an ASGI app, to mount under a web application."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from leakwatch.server.endpoints import Endpoints, Source, with_length

# --- WSGI -------------------------------------------------------------------------------------


def make_wsgi_app(source: Source, registry: CollectorRegistry | None = None) -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving leakwatch's paths relative to where it is mounted."""
    endpoints = Endpoints(source, registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            "accept": environ.get("HTTP_ACCEPT", ""),
            "accept-encoding": environ.get("HTTP_ACCEPT_ENCODING", ""),
            "authorization": environ.get("HTTP_AUTHORIZATION", ""),
        }
        r = endpoints.respond(
            environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", ""), headers
        )
        start_response(r.status, list(with_length(r)))
        return [r.body]

    return app


# --- ASGI -------------------------------------------------------------------------------------


def make_asgi_app(source: Source, registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """An ASGI app serving leakwatch's paths relative to its mount point (`root_path`).

    The exposition is built on the default executor, so a scrape never blocks the event loop.
    """
    endpoints = Endpoints(source, registry)

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        query = scope.get("query_string", b"").decode("latin-1")
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(None, endpoints.respond, scope.get("method", "GET"), path, query, headers)
        code = int(r.status.split(" ", 1)[0])
        raw = [(k.lower().encode(), v.encode()) for k, v in with_length(r)]
        await send({"type": "http.response.start", "status": code, "headers": raw})
        await send({"type": "http.response.body", "body": r.body})

    return app
