"""A small HTTP server of leakwatch's own, for processes that serve no HTTP themselves.

It binds 127.0.0.1 by default, runs its requests on daemon threads with a socket timeout,
and turns away requests beyond `MAX_CONCURRENT` with 503, so a slow or hostile client cannot
pile up threads in the host.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from leakwatch.server.apps import make_wsgi_app
from leakwatch.server.endpoints import Source
from leakwatch.threads import start_thread

logger = logging.getLogger(__name__)

MAX_CONCURRENT = 8
REQUEST_TIMEOUT_SECONDS = 10.0
THREAD_NAME = "leakwatch-http"


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
        try:
            start_thread(self.process_request_thread, f"{THREAD_NAME}-request", request, client_address)
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
        try:
            thread = start_thread(server.serve_forever, THREAD_NAME, poll_interval=0.25)
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
            start_thread(server.shutdown, f"{THREAD_NAME}-stop")
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
