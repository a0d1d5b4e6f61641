"""The pieces of leakwatch's own server that need no socket: reading a request head, and a
lane's threads (kept while there is work, never more than its size, refusing beyond it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from leakwatch.server import standalone
from leakwatch.server.standalone import _Head, _Lane


def wait_for(condition: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)


def test_a_head_gives_the_method_the_unquoted_path_the_query_and_lower_case_headers():
    head = _Head(b"GET /api/graph%3F?type=a.B&x=%41 HTTP/1.1\r\nAccept-Encoding: gzip\r\nAUTHORIZATION:  Bearer t \r\n\r\n")
    assert (head.method, head.path, head.query) == ("GET", "/api/graph?", "type=a.B&x=%41")
    assert head.headers == {"accept-encoding": "gzip", "authorization": "Bearer t"}


def test_an_absolute_target_counts_for_its_path_and_query():
    head = _Head(b"GET http://127.0.0.1:10464/metrics?name[]=x HTTP/1.0\n\n")
    assert (head.path, head.query) == ("/metrics", "name[]=x")


@pytest.mark.parametrize(
    "raw",
    [b"GET /metrics\r\n\r\n", b"GET /metrics HTTP/2\r\n\r\n", b"G ET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n"],
)
def test_a_malformed_head_is_a_400_saying_what_a_request_is(raw):
    with pytest.raises(ValueError) as e:
        _Head(raw)
    status, text = e.value.args
    assert status == "400 Bad Request" and ("request line" in text or "header line" in text)


def lane_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_a_lane_refuses_beyond_its_size_and_reuses_its_threads(monkeypatch):
    monkeypatch.setattr(standalone, "LANE_IDLE_SECONDS", 0.3)
    release = threading.Event()
    done: list[int] = []

    def handle(n: int) -> None:
        release.wait(10)
        done.append(n)

    lane = _Lane("leakwatch-test-lane", 2, handle)
    assert lane.offer(1) and lane.offer(2)
    assert not lane.offer(3)  # both threads busy: refused, not queued
    assert len(lane_threads("leakwatch-test-lane")) == 2
    release.set()
    wait_for(lambda: sorted(done) == [1, 2], timeout=10)
    for n in range(3, 23):  # one at a time: the kept threads answer, no new one starts
        wait_for(lambda n=n: lane.offer(n), timeout=10)
    wait_for(lambda: len(done) == 22, timeout=10)
    assert len(lane_threads("leakwatch-test-lane")) <= 2
    # Idle threads end; the next request starts one again.
    wait_for(lambda: not lane_threads("leakwatch-test-lane"), timeout=10)
    assert lane.offer(99)
    wait_for(lambda: 99 in done, timeout=10)
