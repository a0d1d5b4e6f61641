"""Graphs of a worker's objects, asked for through the process that serves it.

A pre-fork master (or the sibling that holds the port) holds none of its workers' objects, so
its `/api/graph` asks the worker that reports the suspect: it writes a request into their
shared directory (`graph-request-<slot>.json`), the worker takes it within a second, draws
the graph on its own thread and writes the answer whole (`graph-reply-<slot>-<nonce>.ok`, or
`.error` with the reason), which the asker reads and removes. One request is in flight per
server at a time (the endpoint draws one graph at a time). A reply that comes after its asker
gave up is removed by a later ask, once it is older than any graph may take.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from typing import Any

from leakwatch.errors import LeakwatchError
from leakwatch.files import write_atomically

MAX_REQUEST_BYTES = 2048
POLL_SECONDS = 0.05
STALE_REPLY_SECONDS = 600.0  # past the longest graph_budget (300 s)
REPLY_PREFIX = "graph-reply-"
FORMATS = ("json", "dot", "svg")


@dataclasses.dataclass(frozen=True)
class GraphRequest:
    nonce: str
    target: str
    format: str
    samples: int
    depth: int


def _request_path(directory: str, slot: int) -> str:
    return os.path.join(directory, f"graph-request-{slot}.json")


def _reply_path(directory: str, slot: int, nonce: str) -> str:
    return os.path.join(directory, f"{REPLY_PREFIX}{slot}-{nonce}")


def ask(directory: str, slot: int, target: str, format: str, samples: int, depth: int, timeout: float) -> bytes:  # noqa: A002
    """The worker in `slot` draws the graph of `target`; its rendered body, or `LeakwatchError`
    with the worker's reason, or when it does not answer within `timeout` seconds."""
    _remove_stale_replies(directory)
    nonce = secrets.token_hex(8)
    request = {"nonce": nonce, "target": target, "format": format, "samples": samples, "depth": depth}
    try:
        write_atomically(_request_path(directory, slot), json.dumps(request))
    except OSError as e:
        raise LeakwatchError(f"cannot ask worker {slot} for a graph: {e.strerror or e}") from None
    reply = _reply_path(directory, slot, nonce)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for suffix in (".ok", ".error"):
            try:
                with open(reply + suffix, "rb") as f:
                    body = f.read()
            except FileNotFoundError:
                continue
            _unlink(reply + suffix)
            if suffix == ".ok":
                return body
            raise LeakwatchError(f"worker {slot}: {body.decode('utf-8', 'replace')[:300]}")
        time.sleep(POLL_SECONDS)
    _unlink(_request_path(directory, slot))  # not taken yet: withdrawn
    raise LeakwatchError(f"worker {slot} did not draw the graph within {timeout:g} s; try again")


def take(directory: str, slot: int) -> GraphRequest | None:
    """The request waiting for the worker in `slot`, taken (removed), or None. A file that is
    no request of ours (too long, not the expected JSON) is removed and ignored."""
    path = _request_path(directory, slot)
    taken = f"{path}.{os.getpid()}"
    try:
        os.rename(path, taken)
    except OSError:
        return None
    try:
        fd = os.open(taken, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MAX_REQUEST_BYTES + 1)
        data: Any = json.loads(raw) if len(raw) <= MAX_REQUEST_BYTES else None
        request = GraphRequest(
            nonce=str(data["nonce"]),
            target=str(data["target"]),
            format=str(data["format"]),
            samples=int(data["samples"]),
            depth=int(data["depth"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
    finally:
        _unlink(taken)
    if not request.nonce.isalnum() or request.format not in FORMATS:
        return None
    return request


def answer(directory: str, slot: int, request: GraphRequest, body: bytes | None, error: str = "") -> None:
    """Write the rendered graph, or the reason there is none, where the asker waits for it."""
    reply = _reply_path(directory, slot, request.nonce)
    if body is not None:
        write_atomically(reply + ".ok", body)
    else:
        write_atomically(reply + ".error", error)


def _remove_stale_replies(directory: str) -> None:
    """Replies no asker waits for any more (it gave up on the worker before they came)."""
    stale = time.time() - STALE_REPLY_SECONDS
    try:
        with os.scandir(directory) as entries:
            old = [e.path for e in entries if e.name.startswith(REPLY_PREFIX) and e.stat(follow_symlinks=False).st_mtime < stale]
    except OSError:
        return
    for path in old:
        _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
