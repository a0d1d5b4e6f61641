"""leakwatch's own threads: daemon threads, named, and deaf to the process's signals.

A signal sent to a process (SIGTERM from a container runtime, SIGINT from a master to its
workers) is delivered to any one of its threads that does not block it. On leakwatch's
thread it does harm: Python's handler runs on the main thread only, so the main thread, maybe
asleep in a system call, is not woken to run it; and a server that handles signals in C
(uWSGI) runs its exit on the thread the signal landed on, where the interpreter's shutdown then
waits forever for the main thread still serving. So every thread leakwatch starts blocks the
asynchronous signals, and the kernel delivers them to the application's threads. The signals a
fault raises in the thread that caused it (SIGSEGV, SIGBUS, ...) are never blocked.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import Any

# Raised by a fault in the very thread that caused it: blocking them is undefined behaviour.
_SYNCHRONOUS = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS", "SIGABRT"}


@functools.cache
def blocked_signals() -> frozenset[signal.Signals]:
    """The signals leakwatch's threads block (none where threads cannot block signals)."""
    if not hasattr(signal, "pthread_sigmask"):
        return frozenset()
    out = set()
    for sig in signal.valid_signals():
        try:
            sig = signal.Signals(sig)
        except ValueError:
            continue  # a real-time signal with no name: applications pick those on purpose
        if sig.name not in _SYNCHRONOUS and sig not in (signal.SIGKILL, signal.SIGSTOP):
            out.add(sig)
    return frozenset(out)


def start_thread(target: Callable[..., Any], name: str, *args: Any, **kwargs: Any) -> threading.Thread:
    """Start a daemon thread named `name` running `target(*args, **kwargs)`, with the
    asynchronous signals blocked from its first instruction (it inherits the mask the caller
    holds while starting it; the caller's own mask is restored at once).

    `RuntimeError` as `Thread.start` raises it (at interpreter shutdown, for instance).
    """
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, name=name, daemon=True)
    blocked = blocked_signals()
    if not blocked:
        thread.start()
        return thread
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
