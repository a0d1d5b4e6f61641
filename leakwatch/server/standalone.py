"""leakwatch's own HTTP server, for processes that serve no HTTP themselves (the `port` option).

One thread (`leakwatch-http`) does all the waiting on clients, without blocking: it accepts
connections, reads their request heads, writes the answers as fast as clients take them, and
reads what a client sent beyond its head before closing. A request whose head is whole goes to a
thread of its lane, which only works out the answer and hands it back. So a few slow or hostile
clients cannot starve a scraper:

- A client that sends its head slowly (slow loris), or never, holds a socket and no thread. It
  is cut off `HEAD_TIMEOUT_SECONDS` after it connected, however often it sends a byte. When
  `MAX_PENDING` such sockets are open, the oldest is closed to make room: a scraper that sends
  its request at once always gets in.
- /metrics, /api/suspects and the page have their own threads (`FAST_LANE`). Graphs and
  snapshots (`SLOW_LANE`) cannot take them. A request beyond its lane is answered at once
  (503 or 429, with Retry-After), never queued.
- An answer the client does not read is given up `WRITE_TIMEOUT_SECONDS` later; what a
  client sent beyond its head is read for `DRAIN_SECONDS` at most. Neither holds a thread.
- Connections are taken from the kernel's queue at `ACCEPT_RATE` a second at most: a flood
  costs the host that much work and no more, and waits its turn in the queue.

Every answer closes its connection (`Connection: close`); Prometheus connects anew per scrape.
The server binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from leakwatch.server.endpoints import Endpoints, Response, Source, text_response, with_length
from leakwatch.threads import start_thread

logger = logging.getLogger(__name__)

THREAD_NAME = "leakwatch-http"
HEAD_TIMEOUT_SECONDS = 5.0  # from connect to the end of the request's head
WRITE_TIMEOUT_SECONDS = 10.0  # for the answer to be taken
MAX_PENDING = 64  # connections whose head is not whole yet; the oldest goes first
MAX_HEAD_BYTES = 16384  # request line and headers
MAX_LINE_BYTES = 8192  # the request line alone
FAST_LANE = 6  # threads for /metrics, /api/suspects and the page
SLOW_LANE = 2  # threads for graphs and snapshots, which wait their turn or are told to come back
SLOW_PATHS = ("/api/graph", "/api/snapshot")
LANE_IDLE_SECONDS = 60.0
# Connections taken from the kernel's queue: at most this many a second, after a first burst,
# and a few at a time between reads. A flood waits in the queue (which costs the host nothing)
# instead of taking the host's CPU; its queue is deep enough that no connection is refused.
ACCEPT_RATE = 1000.0
ACCEPT_BURST = 100.0
ACCEPTS_PER_ROUND = 16
BACKLOG = 1024
DRAIN_SECONDS = 1.0  # reading what a client sent beyond its head, after answering it
VERSIONS = ("HTTP/1.0", "HTTP/1.1")


class _Head:
    """A request head: what `Endpoints.respond` takes. `ValueError` carries the status to answer."""

    def __init__(self, raw: bytes) -> None:
        text = raw.decode("latin-1")
        lines = text.replace("\r\n", "\n").split("\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in VERSIONS or not parts[0].isalpha():
            raise ValueError("400 Bad Request", "a request line is METHOD /path HTTP/1.1\n")
        self.method, target, _ = parts
        if "://" in target.split("?", 1)[0]:  # absolute form: only its path and query count
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, self.query = target.partition("?")
        self.path = unquote(path, "latin-1")
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                break
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise ValueError("400 Bad Request", "a header line is Name: value\n")
            self.headers[name.lower()] = value.strip()


class _Lane:
    """Up to `size` threads that answer the requests handed to them, started when wanted and
    ended after `LANE_IDLE_SECONDS` without work (starting a thread per request would cost a
    flood's host more than answering it). A request beyond them is refused, never queued."""

    def __init__(self, name: str, size: int, handle: Callable[..., None]) -> None:
        self._name, self._size, self._handle = name, size, handle
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._busy = 0  # requests handed over and not yet answered; never more than its threads
        self._threads = 0

    def offer(self, *request: Any) -> bool:
        """Hand a request to a thread of the lane; False when all are busy (or none can start)."""
        with self._lock:
            if self._busy >= self._size:
                return False
            if self._threads <= self._busy:
                try:
                    start_thread(self._run, self._name)
                except RuntimeError:  # no thread to be had (interpreter shutdown, limits)
                    return False
                self._threads += 1
            self._busy += 1
            self._work.put(request)
        return True

    def close(self) -> None:
        """Ask its threads to end once they are idle."""
        with self._lock:
            for _ in range(self._threads):
                self._work.put(None)

    def _run(self) -> None:
        while True:
            try:
                request = self._work.get(timeout=LANE_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._work.empty():  # offer() puts under the lock: nothing is left behind
                        self._threads -= 1
                        return
                continue
            if request is None:
                with self._lock:
                    self._threads -= 1
                return
            try:
                self._handle(*request)
            finally:
                with self._lock:
                    self._busy -= 1


class _Pending:
    """A connection the selector thread waits on: for its head (`data` so far), to take its
    answer (`out` left to send; then its input is drained if `linger`), or to drain its input."""

    __slots__ = ("sock", "deadline", "data", "out", "linger")

    def __init__(self, sock: socket.socket, deadline: float, out: memoryview | None = None, linger: bool = False) -> None:
        self.sock, self.deadline, self.data = sock, deadline, b""
        self.out, self.linger = out, linger


class MetricsServer:
    """leakwatch's own HTTP server on a daemon thread. `start()` raises OSError if it cannot bind."""

    def __init__(self, source: Source, host: str = "127.0.0.1", port: int = 0) -> None:
        self._endpoints = Endpoints(source)
        self._host = host
        self._port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        # Connections by file descriptor, oldest (first deadline) first: waiting for a head,
        # taking an answer, and answered with input to read until the client closes (closing
        # with input unread would reset the connection under the answer).
        self._pending: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        self._writing: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        self._draining: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        # Requests with a lane (their sockets), and the answers lanes hand back.
        self._in_lanes: set[socket.socket] = set()
        self._answered: queue.SimpleQueue[tuple[socket.socket, bytes, bool]] = queue.SimpleQueue()
        self._stopping = False
        self._accepts = ACCEPT_BURST  # connections it may take now
        self._accepts_at = 0.0
        self._listening = False
        self._lanes = self._new_lanes()

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) it listens on, or None when not serving."""
        listener = self._listener
        if listener is None:
            return None
        try:
            host, port = listener.getsockname()[:2]
        except OSError:  # closed meanwhile
            return None
        return str(host), int(port)

    def start(self) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # "::" takes IPv4 too, as the system's default has it (create_server would make it IPv6 only).
        dual = self._host == "::" and socket.has_dualstack_ipv6()
        listener = socket.create_server((self._host, self._port), family=family, backlog=BACKLOG, dualstack_ipv6=dual)
        try:
            listener.setblocking(False)
            # poll keeps its registrations in this process: a forked child that closes its copies
            # cannot unregister the parent's sockets, as it could through a shared epoll.
            selector = selectors.PollSelector() if hasattr(selectors, "PollSelector") else selectors.DefaultSelector()
            wake = socket.socketpair()
        except BaseException:
            _close(listener)
            raise
        for end in wake:
            end.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
        selector.register(wake[0], selectors.EVENT_READ)
        self._listener, self._selector, self._wake, self._stopping = listener, selector, wake, False
        self._listening, self._accepts_at = True, time.monotonic()
        self._lanes = self._new_lanes()
        try:
            self._thread = start_thread(self._serve, THREAD_NAME)
        except BaseException:
            self._close_all()
            raise
        address = self.address
        assert address is not None
        return address

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving and close the sockets (idempotent); waits at most `timeout` seconds."""
        thread, self._thread = self._thread, None
        if self._listener is None:
            return
        self._stopping = True
        self._wake_up()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._close_all()
        # else the thread closes them when it wakes

    def abandon(self) -> None:
        """After fork, in the child: close the inherited sockets without touching the parent's thread."""
        self._thread = None
        self._lanes = self._new_lanes()  # the parent's threads are not here, and their locks may be held
        self._close_all()
        # The sockets of requests the parent's threads were answering: the child's copies.
        for sock in list(self._in_lanes):
            _close(sock)
        self._in_lanes.clear()

    def _new_lanes(self) -> dict[str, _Lane]:
        return {
            "fast": _Lane(f"{THREAD_NAME}-fast", FAST_LANE, self._handle),
            "slow": _Lane(f"{THREAD_NAME}-slow", SLOW_LANE, self._handle),
        }

    # --- the selector thread -------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stopping:
                selector = self._selector
                if selector is None:
                    return
                wait = self._pace_accepts(selector)
                for key, _ in selector.select(wait):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif self._wake is not None and key.fileobj is self._wake[0]:
                        self._drain_wake()
                    elif key.fd in self._writing:
                        self._write(key.fd)
                    elif key.fd in self._draining:
                        self._drain(key.fd)
                    else:
                        self._read(key.fd)
                self._take_answers()
                self._expire()
        except Exception:  # never into the host; the server stops, and refuses rather than hangs
            logger.warning("leakwatch http: the server stopped on an error", exc_info=True)
        finally:
            self._close_all()

    def _pace_accepts(self, selector: selectors.BaseSelector) -> float:
        """Listen while there are accepts to spend; how long the next select may wait."""
        now = time.monotonic()
        self._accepts = min(ACCEPT_BURST, self._accepts + (now - self._accepts_at) * ACCEPT_RATE)
        self._accepts_at = now
        waits = [1.0] + [next(iter(d.values())).deadline - now for d in self._tables() if d]
        if self._accepts >= 1 and not self._listening:
            selector.register(self._listener, selectors.EVENT_READ)  # type: ignore[arg-type]
            self._listening = True
        elif self._accepts < 1:
            if self._listening:
                selector.unregister(self._listener)  # type: ignore[arg-type]
                self._listening = False
            waits.append((1 - self._accepts) / ACCEPT_RATE)
        return max(0.0, min(waits))

    def _accept(self) -> None:
        listener, selector = self._listener, self._selector
        assert listener is not None and selector is not None
        for _ in range(min(ACCEPTS_PER_ROUND, int(self._accepts))):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of descriptors, or the like: drop nothing, try on the next round
                logger.debug("leakwatch http: accept failed: %s", e)
                return
            self._accepts -= 1
            self._make_room()
            sock.setblocking(False)
            pending = _Pending(sock, time.monotonic() + HEAD_TIMEOUT_SECONDS)
            self._pending[sock.fileno()] = pending
            selector.register(sock, selectors.EVENT_READ)

    def _tables(self) -> tuple[collections.OrderedDict[int, _Pending], ...]:
        return self._pending, self._writing, self._draining

    def _make_room(self) -> None:
        """Below MAX_PENDING open connections, for one more: answered ones go first (draining,
        then those slow to take their answer), then the oldest waiting for a head, unless its
        head has come meanwhile (it is answered, not dropped)."""
        while self._open() >= MAX_PENDING and (self._draining or self._writing):
            self._drop((self._draining or self._writing).popitem(last=False)[1])
        while self._pending and self._open() >= MAX_PENDING:
            fd = next(iter(self._pending))
            self._read(fd)
            if fd in self._pending:
                self._drop(self._pending.pop(fd))

    def _open(self) -> int:
        return sum(len(table) for table in self._tables())

    def _read(self, fd: int) -> None:
        pending = self._pending.get(fd)
        if pending is None:
            return
        try:
            chunk = pending.sock.recv(MAX_HEAD_BYTES + 1 - len(pending.data))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # closed before its head was whole
            self._forget(fd)
            return
        pending.data += chunk
        end = _head_end(pending.data)
        if len(pending.data[: end if end >= 0 else None].split(b"\n", 1)[0]) > MAX_LINE_BYTES:
            self._answer_now(fd, text_response("414 URI Too Long", f"a request line is at most {MAX_LINE_BYTES} bytes\n"))
            return
        if end < 0:
            if len(pending.data) > MAX_HEAD_BYTES:
                self._answer_now(
                    fd,
                    text_response("431 Request Header Fields Too Large", f"a request head is at most {MAX_HEAD_BYTES} bytes\n"),
                )
            return
        self._forget(fd, close=False)
        try:
            head = _Head(pending.data[:end])
        except ValueError as e:
            status, text = e.args
            self._reply_and_close(pending.sock, text_response(status, text), pending.data[end:])
            return
        lane = "slow" if head.path in SLOW_PATHS else "fast"
        self._in_lanes.add(pending.sock)
        if not self._lanes[lane].offer(pending.sock, head, pending.data[end:]):
            self._in_lanes.discard(pending.sock)
            self._reply_and_close(pending.sock, _busy(lane), pending.data[end:])

    def _take_answers(self) -> None:
        """Send what lanes have answered (as far as each client takes it now)."""
        while True:
            try:
                sock, out, linger = self._answered.get_nowait()
            except queue.Empty:
                return
            self._in_lanes.discard(sock)
            self._send(sock, out, linger)

    def _expire(self) -> None:
        now = time.monotonic()
        for table in (self._draining, self._writing):
            while table:
                fd, oldest = next(iter(table.items()))
                if oldest.deadline > now:
                    break
                self._drop(table.pop(fd))
        while self._pending:
            fd, oldest = next(iter(self._pending.items()))
            if oldest.deadline > now:
                return
            self._forget(fd, close=False)
            self._reply_and_close(
                oldest.sock,
                text_response("408 Request Timeout", f"send a request's head within {HEAD_TIMEOUT_SECONDS:g} s\n"),
                b"",
            )

    def _answer_now(self, fd: int, response: Response) -> None:
        pending = self._pending.get(fd)
        if pending is not None:
            self._forget(fd, close=False)
            self._reply_and_close(pending.sock, response, b"x")

    def _forget(self, fd: int, close: bool = True) -> None:
        """Stop waiting for a head on `fd`; the socket is closed unless it is to be answered."""
        pending = self._pending.pop(fd, None)
        if pending is not None:
            self._drop(pending, close)

    def _drop(self, pending: _Pending, close: bool = True) -> None:
        if self._selector is not None:
            try:
                self._selector.unregister(pending.sock)
            except (KeyError, ValueError):
                pass
        if close:
            _close(pending.sock)

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None:
            try:
                wake[1].send(b"x")
            except OSError:  # full: a wake is due anyway; closed: nobody to wake
                pass

    def _drain_wake(self) -> None:
        assert self._wake is not None
        try:
            self._wake[0].recv(4096)
        except OSError:
            pass

    def _reply_and_close(self, sock: socket.socket, response: Response, unread: bytes) -> None:
        self._send(sock, _serialize(response), bool(unread))

    def _send(self, sock: socket.socket, out: bytes, linger: bool) -> None:
        """Send an answer as far as the client takes it now, the rest as it reads, all within
        `WRITE_TIMEOUT_SECONDS`. Then the output is ended, and with `linger` what the client
        sent beyond its head is read before the connection is closed."""
        self._write_some(_Pending(sock, time.monotonic() + WRITE_TIMEOUT_SECONDS, memoryview(out), linger))

    def _write(self, fd: int) -> None:
        self._write_some(self._writing[fd])

    def _write_some(self, writing: _Pending) -> None:
        sock, out, selector = writing.sock, writing.out, self._selector
        assert out is not None
        fd = sock.fileno()
        try:
            sent = sock.send(out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away
            sent = -1
        if selector is not None and 0 <= sent < len(out):
            writing.out = out[sent:]
            if fd not in self._writing:
                self._writing[fd] = writing
                selector.register(sock, selectors.EVENT_WRITE)
            return
        if self._writing.pop(fd, None) is not None:
            self._drop(writing, close=False)
        if selector is None or sent < 0:
            _close(sock)
            return
        try:
            sock.shutdown(socket.SHUT_WR)  # the answer's end, even where a forked child holds a copy
        except OSError:
            writing.linger = False
        if not writing.linger:
            _close(sock)
            return
        self._draining[fd] = _Pending(sock, time.monotonic() + DRAIN_SECONDS)
        selector.register(sock, selectors.EVENT_READ)

    def _drain(self, fd: int) -> None:
        draining = self._draining[fd]
        try:
            chunk = draining.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(self._draining.pop(fd))

    # --- a lane's thread -------------------------------------------------------------------------

    def _handle(self, sock: socket.socket, head: _Head, unread: bytes) -> None:
        """Work out the answer and hand it to the selector thread, which sends it: a lane's
        thread never waits on a client."""
        try:
            out = _serialize(self._endpoints.respond(head.method, head.path, head.query, head.headers))
        except Exception:  # respond answers 500 itself; nothing may end a lane's thread
            logger.debug("leakwatch http: answering %s failed", head.path[:200], exc_info=True)
            out = _serialize(text_response("500 Internal Server Error", "leakwatch could not answer this request\n"))
        self._answered.put((sock, out, bool(unread) or _has_body(head)))
        if self._selector is None:  # stopped meanwhile: nobody sends it
            self._close_answered()
        else:
            self._wake_up()

    def _close_answered(self) -> None:
        while True:
            try:
                sock = self._answered.get_nowait()[0]
            except queue.Empty:
                return
            self._in_lanes.discard(sock)
            _close(sock)

    def _close_all(self) -> None:
        for lane in self._lanes.values():
            lane.close()
        selector, self._selector = self._selector, None  # before the answers: see _handle
        self._close_answered()
        for table in self._tables():
            for pending in list(table.values()):
                _close(pending.sock)
            table.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        wake, self._wake = self._wake, None
        for sock in wake or ():
            _close(sock)
        if selector is not None:
            try:
                selector.close()
            except OSError:
                pass


def _head_end(data: bytes) -> int:
    """Where the head ends (after its blank line), or -1 while it is not whole."""
    for mark in (b"\r\n\r\n", b"\n\n"):
        at = data.find(mark)
        if at >= 0:
            return at + len(mark)
    return -1


def _has_body(head: _Head) -> bool:
    return "content-length" in head.headers or "transfer-encoding" in head.headers


def _busy(lane: str) -> Response:
    if lane == "slow":
        return text_response(
            "429 Too Many Requests", "graphs and snapshots are busy; try again shortly\n", (("Retry-After", "5"),)
        )
    return text_response("503 Service Unavailable", "leakwatch is answering other requests; try again\n", (("Retry-After", "1"),))


def _serialize(response: Response) -> bytes:
    lines = [f"HTTP/1.1 {response.status}", f"Date: {email.utils.formatdate(usegmt=True)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in with_length(response)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


__all__ = ["MetricsServer"]
