"""HTTP endpoints: `/metrics` (Prometheus text, or OpenMetrics when asked) and `/api/suspects`
(the current report as JSON), as a WSGI app, an ASGI app, or a small server of its own.

One routing function, `respond`, serves all three, so they answer alike: GET and HEAD only
(405 with `Allow` otherwise), 404 naming the known paths, 400 naming the allowed parameters.
The server of its own binds 127.0.0.1 by default, runs its requests on daemon threads with a
socket timeout, and turns away requests beyond `MAX_CONCURRENT` with 503, so a slow or hostile
client cannot pile up threads in the host.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hmac
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from leakwatch.errors import LeakwatchError
from leakwatch.exporters.prometheus import LeakwatchCollector, ReportSource
from leakwatch.prefork.merge import merged_report, suspects_document, workers_of

logger = logging.getLogger(__name__)

PATHS = ("/metrics", "/api/suspects", "/api/graph")
METHODS = ("GET", "HEAD")
METRICS_PARAMS = ("name[]",)
GRAPH_PARAMS = ("suspect", "type", "site", "format", "samples", "depth")
# Bounds on what one graph request may ask for.
GRAPH_SAMPLES = (1, 32)
GRAPH_DEPTH = (1, 64)
GRAPH_CONTENT_TYPES = {"json": "application/json", "dot": "text/vnd.graphviz; charset=utf-8", "svg": "image/svg+xml"}
MAX_CONCURRENT = 8
REQUEST_TIMEOUT_SECONDS = 10.0
THREAD_NAME = "leakwatch-http"

Source = ReportSource | Callable[[], ReportSource | None]


@dataclasses.dataclass(frozen=True)
class Response:
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def private_registry(source: Source) -> CollectorRegistry:
    """A registry with leakwatch's collector and prometheus_client's process, platform and gc
    collectors, as the default registry would have them (so `process_resident_memory_bytes` is there)."""
    registry = CollectorRegistry()
    registry.register(LeakwatchCollector(source))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class Endpoints:
    """Answers requests for one source; the same object backs WSGI, ASGI and the server."""

    def __init__(self, source: Source, registry: CollectorRegistry | None = None) -> None:
        self._resolve: Callable[[], ReportSource | None] = (
            source if callable(source) and not hasattr(source, "report") else (lambda: source)  # type: ignore[assignment,return-value]
        )
        self.registry = registry if registry is not None else private_registry(self._resolve)
        # One graph at a time: a second request while one is drawn gets 429, not a queue.
        self._graphing = threading.Lock()

    def respond(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> Response:
        """One request: `headers` keys are lower-case. Never raises: a failure answers 500."""
        try:
            return self._respond(method, path, query, headers)
        except Exception:
            logger.debug("leakwatch http: answering %s %s failed", method[:20], path[:200], exc_info=True)
            return _text("500 Internal Server Error", "leakwatch could not answer this request\n")

    def _respond(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> Response:
        if path not in PATHS and path not in ("", "/"):
            return _text("404 Not Found", f"no such path: {path[:200]}; leakwatch serves {', '.join(PATHS)}\n")
        if method not in METHODS:
            return _text("405 Method Not Allowed", f"{method[:20]} is not allowed; use GET or HEAD\n", (("Allow", "GET, HEAD"),))
        params = parse_qs(query, keep_blank_values=True)
        allowed = {"/metrics": METRICS_PARAMS, "/api/graph": GRAPH_PARAMS}.get(path, ())
        unknown = sorted(k for k in params if k not in allowed)
        if unknown:
            what = ", ".join(allowed) if allowed else "none"
            return _text("400 Bad Request", f"unknown query parameter {unknown[0][:50]!r} for {path}; allowed: {what}\n")
        response = self._answer(path, params, headers)
        if method == "HEAD":
            # The length a GET would get, without the body.
            length = (("Content-Length", str(len(response.body))),)
            return dataclasses.replace(response, headers=response.headers + length, body=b"")
        return response

    def _answer(self, path: str, params: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
        if path in ("", "/"):
            source = self._resolve()
            if source is None:
                return _text("503 Service Unavailable", "leakwatch is not started in this process\n")
            from leakwatch.page import render_page

            page = render_page(merged_report(source), source.config)
            return Response("200 OK", (("Content-Type", "text/html; charset=utf-8"),), page.encode())
        if path == "/api/graph":
            return self._graph(params, headers)
        if path == "/api/suspects":
            source = self._resolve()
            if source is None:
                return _text("503 Service Unavailable", "leakwatch is not started in this process\n")
            body = json.dumps(suspects_document(source), indent=2).encode() + b"\n"
            return Response("200 OK", (("Content-Type", "application/json"),), body)
        try:
            encoder, content_type = choose_encoder(headers.get("accept", ""))
        except Exception:  # a malformed Accept (e.g. "version=x"): answer in the plain text format
            encoder, content_type = choose_encoder("")
        registry = self.registry
        if "name[]" in params:
            registry = registry.restricted_registry(params["name[]"])  # type: ignore[assignment]
        body = encoder(registry)
        out = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
        if accepts_gzip(headers.get("accept-encoding", "")):
            body = gzip.compress(body, compresslevel=5)
            out.append(("Content-Encoding", "gzip"))
        return Response("200 OK", tuple(out), body)

    def _graph(self, params: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
        source = self._resolve()
        if source is None:
            return _text("503 Service Unavailable", "leakwatch is not started in this process\n")
        config = source.config
        if workers_of(source) is not None:
            return _text(
                "404 Not Found",
                "this is a pre-fork master, which holds none of its workers' objects; graphs are drawn in the workers: "
                "set graph_dir and put a graph-request file there\n",
            )
        if not config.graphs:
            return _text(
                "404 Not Found", "/api/graph is off; start leakwatch with graphs=true (LEAKWATCH_GRAPHS=1) to serve it\n"
            )
        if config.graph_token and not _token_matches(headers.get("authorization", ""), config.graph_token):
            return _text(
                "401 Unauthorized", "/api/graph needs 'Authorization: Bearer <token>'\n", (("WWW-Authenticate", "Bearer"),)
            )
        try:
            request = _graph_request(params, source.report())
        except ValueError as e:
            return _text("400 Bad Request", f"{e}\n")
        if not self._graphing.acquire(blocking=False):
            return _text("429 Too Many Requests", "a graph is being drawn; try again shortly\n", (("Retry-After", "5"),))
        try:
            draw = getattr(source, "graph", None)
            if draw is None:
                return _text("404 Not Found", "this report source draws no graphs\n")
            target, format_, samples, depth = request
            rendered = draw(target, format_, samples=samples, max_depth=depth)
        except LeakwatchError as e:
            return _text("503 Service Unavailable", f"{e}\n", (("Retry-After", "5"),))
        finally:
            self._graphing.release()
        body = json.dumps(rendered, indent=2).encode() + b"\n" if isinstance(rendered, dict) else rendered
        if isinstance(body, str):
            body = body.encode()
        return Response("200 OK", (("Content-Type", GRAPH_CONTENT_TYPES[format_]),), body)


def _token_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _graph_request(params: Mapping[str, list[str]], report: Any) -> tuple[str, str, int, int]:
    """(target, format, samples, depth) from the query, or ValueError saying what is wrong."""
    from leakwatch import refgraph

    def one(name: str, default: str) -> str:
        values = params.get(name, [default])
        if len(values) != 1:
            raise ValueError(f"give {name} once")
        return values[0]

    given = {name: one(name, "") for name in ("suspect", "type", "site")}
    given = {name: value for name, value in given.items() if value}
    if len(given) != 1:
        raise ValueError("give exactly one of suspect=<id> (see /api/suspects), type=<module.QualName> or site=<path.py:LINE>")
    ((name, target),) = given.items()
    if name == "suspect" and not refgraph.SUSPECT_ID.match(target):
        raise ValueError(f"suspect={target[:40]!r} is not a suspect id (12 hex digits; see /api/suspects)")
    try:
        wanted = refgraph.resolve_target(target, report.suspects)
    except LeakwatchError as e:
        raise ValueError(str(e)) from None
    if name != "suspect" and wanted.kind != name:
        raise ValueError(f"{name}={target[:80]!r} is not a {name} name; {refgraph.ALLOWED_TARGETS}")
    format_ = one("format", "json")
    if format_ not in refgraph.FORMATS:
        raise ValueError(f"format={format_[:20]!r}; allowed: {', '.join(refgraph.FORMATS)}")
    samples = _bounded(one("samples", str(refgraph.DEFAULT_SAMPLES)), "samples", GRAPH_SAMPLES)
    depth = _bounded(one("depth", str(refgraph.DEFAULT_MAX_DEPTH)), "depth", GRAPH_DEPTH)
    return target, format_, samples, depth


def _bounded(text: str, name: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name}={text[:20]!r}; allowed: an integer from {low} to {high}")
    return int(text)


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (q=0 refuses it)."""
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def _text(status: str, text: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, (("Content-Type", "text/plain; charset=utf-8"), *extra), text.encode())


def _with_length(r: Response) -> tuple[tuple[str, str], ...]:
    if any(name == "Content-Length" for name, _ in r.headers):
        return r.headers
    return (*r.headers, ("Content-Length", str(len(r.body))))


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
        start_response(r.status, list(_with_length(r)))
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
        raw = [(k.lower().encode(), v.encode()) for k, v in _with_length(r)]
        await send({"type": "http.response.start", "status": code, "headers": raw})
        await send({"type": "http.response.body", "body": r.body})

    return app


# --- a server of its own ------------------------------------------------------------------------


class _DeadlineReader(io.RawIOBase):
    """Reads a socket until a deadline for the whole request, not per read: a client that
    trickles one byte every few seconds is cut off all the same."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("leakwatch http: request took too long")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS

    def setup(self) -> None:
        super().setup()
        deadline = time.monotonic() + REQUEST_TIMEOUT_SECONDS
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug("leakwatch http: " + format, *args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name=f"{THREAD_NAME}-request", daemon=True
        )
        try:
            thread.start()
        except BaseException:  # no thread to be had (limits, shutdown): free the slot, drop the request
            self._slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("leakwatch http: a request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """leakwatch's own HTTP server on a daemon thread. `start()` raises OSError if it cannot bind."""

    def __init__(self, source: Source, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = make_wsgi_app(source)
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) it listens on, or None when not serving."""
        server = self._server
        if server is None:
            return None
        host, port = server.server_address[:2]
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        server_class = _Server6 if ":" in self._host else _Server
        server = make_server(self._host, self._port, self._app, server_class=server_class, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.25}, name=THREAD_NAME, daemon=True)
        try:
            thread.start()
        except BaseException:
            server.server_close()
            raise
        self._server, self._thread = server, thread
        address = self.address
        assert address is not None
        return address

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving and close the socket (idempotent); waits at most `timeout` seconds."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            # shutdown() waits without a bound; ask from a helper thread and wait for it here.
            threading.Thread(target=server.shutdown, name=f"{THREAD_NAME}-stop", daemon=True).start()
            thread.join(timeout)
        server.server_close()

    def abandon(self) -> None:
        """After fork, in the child: close the inherited socket without touching the parent's thread."""
        server = self._server
        self._server = self._thread = None
        if server is not None:
            try:
                server.socket.close()
            except OSError:
                pass
