"""leakwatch's own server against slow and hostile clients, over real sockets to a real
`leakwatch run` process: half-sent requests, more of them than the server keeps, and a flood of
graph requests, while a scraper polls /metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from leakwatch.server.standalone import HEAD_TIMEOUT_SECONDS, MAX_PENDING
from tests.integration.conftest import PROGRAMS, free_port, wait_for


def get(url: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read(), time.monotonic() - started
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(), time.monotonic() - started


@pytest.fixture
def service(subprocess_env) -> Iterator[str]:
    """A steadily leaking program under `leakwatch run`, serving /metrics and graphs on a port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "leakwatch", "run", "--quiet", "-o", f"port={port}", "-o", "graphs=true"]
        + ["--", sys.executable, os.path.join(PROGRAMS, "leak_steady.py")],
        env={**subprocess_env, "SCENARIO_SECONDS": "600"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base), timeout=30)
        yield base
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        assert "Traceback" not in err, err


def _answers(base: str) -> bool:
    try:
        return get(base + "/metrics", timeout=2)[0] == 200
    except OSError:
        return False


class HalfOpen:
    """Keeps `count` connections that send part of a request head and never the rest, a byte now
    and then (slow loris); one the server closes is opened again at once."""

    def __init__(self, base: str, count: int) -> None:
        host, port = base.rsplit("/", 1)[1].split(":")
        self.address = (host, int(port))
        self.socks = [self._open() for _ in range(count)]
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        s = socket.create_connection(self.address, timeout=5)
        s.sendall(b"GET /metr")
        return s

    def _trickle(self) -> None:
        while not self._stop.wait(0.5):
            for i, s in enumerate(self.socks):
                try:
                    s.sendall(b"i")
                    s.setblocking(False)
                    closed = s.recv(1024) == b""  # or an answer (408): either way, it was cut off
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                finally:
                    s.setblocking(True)
                if closed:
                    s.close()
                    try:
                        self.socks[i] = self._open()
                        self.reopened += 1
                    except OSError:
                        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.socks:
            s.close()


def test_a_scrape_at_1_hz_is_answered_within_a_second_through_slow_loris_and_a_graph_flood(service):
    graph_url = service + "/api/graph?type=__main__.Session&samples=32"
    flood: list[tuple[int, str, float]] = []
    stop = threading.Event()

    def flood_graphs() -> None:
        while not stop.is_set():
            try:
                status, headers, _, took = get(graph_url, timeout=60)
                flood.append((status, headers.get("Retry-After", ""), took))
            except OSError as e:
                flood.append((0, str(e), 0.0))

    loris = HalfOpen(service, 50)
    scrapes = []
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(16):
                pool.submit(flood_graphs)
            # Long enough that every half-open connection is cut off at its head deadline and
            # opened again, while the flood goes on.
            for _ in range(int(HEAD_TIMEOUT_SECONDS * 2) + 4):
                tick = time.monotonic()
                status, _, body, took = get(service + "/metrics", timeout=5)
                scrapes.append((status, took))
                assert b"leakwatch_ticks" in body
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            stop.set()
    finally:
        stop.set()
        loris.close()
    assert all(status == 200 and took < 1.0 for status, took in scrapes), scrapes
    assert loris.reopened >= 50, "the half-open connections were never cut off"
    statuses = {status for status, _, _ in flood}
    # Graphs were drawn, and the rest were told to come back, at once and with a time.
    assert 200 in statuses and statuses <= {200, 429}, statuses
    turned_away = [(retry, took) for status, retry, took in flood if status == 429]
    assert turned_away and all(retry.isdigit() and int(retry) >= 1 for retry, _ in turned_away)
    assert max(took for _, took in turned_away) < 5.0, "a turned-away graph request was kept waiting"


def test_more_half_open_connections_than_it_keeps_make_room_for_a_scraper(service):
    host, port = service.rsplit("/", 1)[1].split(":")
    held = []
    try:
        for _ in range(MAX_PENDING + 16):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never the blank line
            held.append(s)
        status, _, _, _ = get(service + "/metrics")
        assert status == 200
        # The oldest were closed to make room; the newest are still waiting for their head.
        for s in held[:16]:
            s.settimeout(5)
            assert s.recv(1024) == b""
        held[-1].setblocking(False)
        with pytest.raises(BlockingIOError):
            held[-1].recv(1024)
    finally:
        for s in held:
            s.close()


def test_a_head_that_never_ends_is_answered_408_at_its_deadline(service):
    host, port = service.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=HEAD_TIMEOUT_SECONDS + 5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        started = time.monotonic()
        answer = s.recv(1024)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < HEAD_TIMEOUT_SECONDS + 2


def test_a_post_with_a_body_gets_its_405_not_a_reset(service):
    host, port = service.rsplit("/", 1)[1].split(":")
    body = b"x" * 200_000
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            s.sendall(body)
        except OSError:
            pass  # the server may close its side once it has answered
        answer = s.recv(1024)
    assert answer.startswith(b"HTTP/1.1 405 "), answer
    assert b"Allow: GET, HEAD" in answer


def test_clients_that_announce_a_body_they_never_send_or_never_read_their_answer_hold_no_thread(service):
    """After its answer, a client's unsent body is waited for, and an answer it does not read is
    kept for it, by the thread that waits on every client: a scraper still gets in at once."""
    host, port = service.rsplit("/", 1)[1].split(":")
    held: list[socket.socket] = []
    stop = threading.Event()

    def hostile() -> None:
        while not stop.is_set() and len(held) < 40:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # takes little of an answer
            s.connect((host, int(port)))
            # A body announced and never sent: the server must read it before closing.
            s.sendall(b"GET /api/suspects HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            held.append(s)
            time.sleep(0.05)

    attacker = threading.Thread(target=hostile, daemon=True)
    attacker.start()
    scrapes = []
    try:
        for _ in range(10):
            status, _, body, took = get(service + "/metrics", timeout=5)
            scrapes.append((status, took))
            time.sleep(0.2)
    finally:
        stop.set()
        attacker.join(5)
        for s in held:
            s.close()
    assert len(held) >= 20, "the hostile clients did not get to connect"
    assert all(status == 200 and took < 1.0 for status, took in scrapes), scrapes
