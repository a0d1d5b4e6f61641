"""A C-level leak that Python cannot see: libc malloc without free.

Requests do ordinary short-lived Python work. Sixteen times a second one of
them calls libc ``malloc`` through ctypes for 64 KB, ``memset``s it so the
pages are really touched (RSS grows, not just virtual size) and never calls
``free``. The only Python reference is one variable that is overwritten, so
neither the gc census nor tracemalloc grows: only process RSS does, at about
1 MB/s.

The leak is scheduled by wall clock rather than per request so the rate stays
~1 MB/s however fast the machine serves requests.

LEAKS: yes, ~1 MB/s of native memory.

EXPECT: process=rss
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
CHUNK_BYTES = 64 * 1024
CHUNKS_PER_SECOND = 16


def load_libc() -> ctypes.CDLL:
    # find_library can return None in minimal containers; the already-loaded
    # C library of the interpreter itself (CDLL(None)) then still has malloc.
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
    # Without explicit types ctypes would truncate the pointer to a C int.
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.memset.restype = ctypes.c_void_p
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    return libc


def leak_native_chunk(libc: ctypes.CDLL) -> int:
    address = libc.malloc(CHUNK_BYTES)
    if address:
        # Touch every page; untouched malloc'd memory would not show in RSS.
        libc.memset(address, 0xAB, CHUNK_BYTES)
    return address or 0


def handle_request(request_id: int) -> int:
    response = {"id": request_id, "body": f"ok-{request_id}"}
    return len(response["body"])


def main() -> int:
    libc = load_libc()
    started = time.monotonic()
    deadline = started + RUN_SECONDS
    chunks_leaked = 0
    last_address = 0  # the one fixed-size Python reference; overwritten each time
    request_id = 0
    while (now := time.monotonic()) < deadline:
        if now >= started + chunks_leaked / CHUNKS_PER_SECOND:
            last_address = leak_native_chunk(libc)
            chunks_leaked += 1
        handle_request(request_id)
        request_id += 1
        time.sleep(PACE_SECONDS)
    del last_address
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
