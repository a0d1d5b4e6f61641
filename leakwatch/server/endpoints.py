"""What each path answers: one routing function, `Endpoints.respond`, behind the WSGI app,
the ASGI app and the standalone server, so they answer alike: GET and HEAD only (405 with
`Allow` otherwise), 404 naming the known paths, 400 naming the allowed parameters."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from leakwatch.errors import LeakwatchError
from leakwatch.exporters.prometheus import LeakwatchCollector, ReportSource
from leakwatch.prefork.merge import merged_report, suspects_document, workers_of

logger = logging.getLogger(__name__)

PATHS = ("/metrics", "/api/suspects", "/api/graph", "/api/snapshot")
METHODS = ("GET", "HEAD")
METRICS_PARAMS = ("name[]",)
GRAPH_PARAMS = ("suspect", "type", "site", "format", "samples", "depth")
# Bounds on what one graph request may ask for.
GRAPH_SAMPLES = (1, 32)
GRAPH_DEPTH = (1, 64)
# A worker looks for a graph request once a second, then draws within graph_budget.
ASK_SLACK_SECONDS = 3.0
# Graphs and snapshots (each walks the heap) may take this share of one core over time, after a
# first burst of CPU seconds: a flood of them is told when to come back (429, Retry-After)
# instead of walking the heap back to back.
GRAPH_SHARE = 0.1
GRAPH_BURST_SECONDS = 2.0
GRAPH_CONTENT_TYPES = {"json": "application/json", "dot": "text/vnd.graphviz; charset=utf-8", "svg": "image/svg+xml"}

Source = ReportSource | Callable[[], ReportSource | None]


@dataclasses.dataclass(frozen=True)
class Response:
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def thread_and_children_cpu() -> float:
    """CPU seconds of the calling thread and of the child processes that have ended (`dot`
    drawing an SVG). A host's own children that end meanwhile count too: that errs toward
    fewer graphs, never more."""
    spent = os.times()
    return time.thread_time() + spent.children_user + spent.children_system


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

    def __init__(
        self,
        source: Source,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = thread_and_children_cpu,
    ) -> None:
        """`clock` paces the CPU share of graphs and snapshots; `cpu_clock` is what one costs."""
        self._resolve: Callable[[], ReportSource | None] = (
            source if callable(source) and not hasattr(source, "report") else (lambda: source)  # type: ignore[assignment,return-value]
        )
        self.registry = registry if registry is not None else private_registry(self._resolve)
        # One graph at a time: a second request while one is drawn gets 429, not a queue.
        self._graphing = threading.Lock()
        self._snapshotting = threading.Lock()  # and one snapshot
        self._credit_lock = threading.Lock()
        self._credit = GRAPH_BURST_SECONDS  # CPU seconds graphs and snapshots may take now
        self._clock, self._cpu_clock = clock, cpu_clock
        self._credit_at = clock()

    def respond(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> Response:
        """One request: `headers` keys are lower-case. Never raises: a failure answers 500."""
        try:
            return self._respond(method, path, query, headers)
        except Exception:
            logger.debug("leakwatch http: answering %s %s failed", method[:20], path[:200], exc_info=True)
            return text_response("500 Internal Server Error", "leakwatch could not answer this request\n")

    def _respond(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> Response:
        if path not in PATHS and path not in ("", "/"):
            return text_response("404 Not Found", f"no such path: {path[:200]}; leakwatch serves {', '.join(PATHS)}\n")
        if method not in METHODS:
            return text_response(
                "405 Method Not Allowed", f"{method[:20]} is not allowed; use GET or HEAD\n", (("Allow", "GET, HEAD"),)
            )
        params = parse_qs(query, keep_blank_values=True)
        allowed = {"/metrics": METRICS_PARAMS, "/api/graph": GRAPH_PARAMS}.get(path, ())
        unknown = sorted(k for k in params if k not in allowed)
        if unknown:
            what = ", ".join(allowed) if allowed else "none"
            return text_response("400 Bad Request", f"unknown query parameter {unknown[0][:50]!r} for {path}; allowed: {what}\n")
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
                return text_response("503 Service Unavailable", "leakwatch is not started in this process\n")
            from leakwatch.server.page import render_page

            page = render_page(merged_report(source), source.config, own_memory=workers_of(source) is None)
            return Response("200 OK", (("Content-Type", "text/html; charset=utf-8"),), page.encode())
        if path == "/api/graph":
            return self._graph(params, headers)
        if path == "/api/snapshot":
            return self._snapshot()
        if path == "/api/suspects":
            source = self._resolve()
            if source is None:
                return text_response("503 Service Unavailable", "leakwatch is not started in this process\n")
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

    def _snapshot(self) -> Response:
        source = self._resolve()
        if source is None:
            return text_response("503 Service Unavailable", "leakwatch is not started in this process\n")
        take = getattr(source, "snapshot", None)
        if take is None or workers_of(source) is not None:
            return text_response(
                "404 Not Found",
                "a snapshot is of one process, and this one serves other processes' reports "
                "(a pre-fork master): call leakwatch.snapshot() in a worker\n",
            )
        if not self._snapshotting.acquire(blocking=False):
            busy = "a snapshot is being taken; try again shortly\n"
            return text_response("429 Too Many Requests", busy, (("Retry-After", "5"),))
        try:
            refused = self._over_share()
            if refused is not None:
                return refused
            with self._charged(self._cpu_clock):
                body = json.dumps(take(), indent=1).encode() + b"\n"
        finally:
            self._snapshotting.release()
        return Response("200 OK", (("Content-Type", "application/json"),), body)

    def _graph(self, params: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
        source = self._resolve()
        if source is None:
            return text_response("503 Service Unavailable", "leakwatch is not started in this process\n")
        config = source.config
        if not config.graphs:
            return text_response(
                "404 Not Found", "/api/graph is off; start leakwatch with graphs=true (LEAKWATCH_GRAPHS=1) to serve it\n"
            )
        if config.graph_token and not _token_matches(headers.get("authorization", ""), config.graph_token):
            return text_response(
                "401 Unauthorized", "/api/graph needs 'Authorization: Bearer <token>'\n", (("WWW-Authenticate", "Bearer"),)
            )
        live = workers_of(source)
        try:
            request = _graph_request(params, source.report() if live is None else merged_report(source))
        except ValueError as e:
            return text_response("400 Bad Request", f"{e}\n")
        target, format_, samples, depth = request
        if live is not None:
            # A master holds none of its workers' objects: the worker that reports the target draws it.
            holder = next((w for w in live if any(target in (s.id, s.key) for s in w.report.suspects)), None)
            holder = holder or (live[0] if live else None)
            if holder is None:
                return text_response("503 Service Unavailable", "no worker reports yet; try again\n", (("Retry-After", "5"),))
        if not self._graphing.acquire(blocking=False):
            return text_response("429 Too Many Requests", "a graph is being drawn; try again shortly\n", (("Retry-After", "5"),))
        try:
            refused = self._over_share()
            if refused is not None:
                return refused
            if live is not None and holder is not None:
                from leakwatch.prefork.graphs import ask

                directory = getattr(source, "workers_dir", "")
                # The worker draws it: its time (poll delay included, and all of it when the
                # worker is too slow to answer) stands for the CPU it took.
                with self._charged(self._clock):
                    body = ask(directory, holder.slot, target, format_, samples, depth, config.graph_budget + ASK_SLACK_SECONDS)
            else:
                draw = getattr(source, "graph", None)
                if draw is None:
                    return text_response("404 Not Found", "this report source draws no graphs\n")
                from leakwatch.refgraph.rendering import as_bytes

                with self._charged(self._cpu_clock):
                    body = as_bytes(draw(target, format_, samples=samples, max_depth=depth))
        except LeakwatchError as e:
            return text_response("503 Service Unavailable", f"{e}\n", (("Retry-After", "5"),))
        finally:
            self._graphing.release()
        return Response("200 OK", (("Content-Type", GRAPH_CONTENT_TYPES[format_]),), body)

    def _over_share(self) -> Response | None:
        """429 with the whole seconds until graphs and snapshots have CPU to spend again, or None."""
        with self._credit_lock:
            now = self._clock()
            self._credit = min(GRAPH_BURST_SECONDS, self._credit + (now - self._credit_at) * GRAPH_SHARE)
            self._credit_at = now
            if self._credit > 0:
                return None
            wait = max(1, math.ceil(-self._credit / GRAPH_SHARE))
        return text_response(
            "429 Too Many Requests",
            f"graphs and snapshots have taken their share of CPU ({GRAPH_SHARE:.0%} of a core); try again in {wait} s\n",
            (("Retry-After", str(wait)),),
        )

    @contextlib.contextmanager
    def _charged(self, clock: Callable[[], float]) -> Iterator[None]:
        """What the block takes on `clock` is spent from the CPU share, whether it succeeds or not."""
        started = clock()
        try:
            yield
        finally:
            spent = clock() - started
            with self._credit_lock:
                self._credit -= spent


def _token_matches(header: str, token: str) -> bool:
    """RFC 7235: the scheme is case-insensitive and one or more spaces may follow it; the
    token itself must match exactly (compared in constant time)."""
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
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ValueError(f"{name}={text[:20]!r}; allowed: an integer from {low} to {high}")
    return int(text)


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (q=0 refuses it)."""
    for part in header.split(","):
        name, *params = part.split(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            for param in params:
                key, _, value = param.strip().partition("=")
                if key.strip().lower() == "q":
                    try:
                        return float(value.strip()) > 0
                    except ValueError:
                        return False
            return True
    return False


def text_response(status: str, text: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, (("Content-Type", "text/plain; charset=utf-8"), *extra), text.encode())


def with_length(r: Response) -> tuple[tuple[str, str], ...]:
    if any(name == "Content-Length" for name, _ in r.headers):
        return r.headers
    return (*r.headers, ("Content-Length", str(len(r.body))))
