"""leakwatch's threads block the process's asynchronous signals, read from the kernel's own
record of each thread's mask (/proc/self/task/<tid>/status), so signals go to the
application's threads."""

from __future__ import annotations

import signal
import threading

from leakwatch.threads import blocked_signals, start_thread
from leakwatch.watcher import Watcher

APPLICATION_SIGNALS = {
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGCHLD,
    signal.SIGALRM,
}
FAULTS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT}


def mask_of(native_id: int) -> set[int]:
    """The signals a thread blocks, as the kernel has them."""
    with open(f"/proc/self/task/{native_id}/status", encoding="ascii") as f:
        line = next(line for line in f if line.startswith("SigBlk:"))
    bits = int(line.split()[1], 16)
    return {n for n in range(1, 65) if bits >> (n - 1) & 1}


def test_a_thread_it_starts_blocks_the_applications_signals_and_never_the_faults():
    seen: dict[str, set[int]] = {}
    done = threading.Event()

    def record() -> None:
        seen["mask"] = mask_of(threading.get_native_id())
        done.wait(5)

    before = mask_of(threading.get_native_id())
    thread = start_thread(record, "leakwatch-test")
    try:
        assert thread.daemon and thread.name == "leakwatch-test"
        for _ in range(500):
            if "mask" in seen:
                break
            threading.Event().wait(0.01)
        assert APPLICATION_SIGNALS <= seen["mask"], seen
        assert not FAULTS & seen["mask"], seen
        assert mask_of(threading.get_native_id()) == before, "the caller's mask is restored"
        assert not FAULTS & set(blocked_signals())
    finally:
        done.set()
        thread.join(5)


def test_the_watchers_thread_leaves_signals_to_the_application():
    watcher = Watcher(interval=60.0, tracemalloc="off").start()
    try:
        thread = watcher._thread
        assert thread is not None and thread.native_id is not None
        assert APPLICATION_SIGNALS <= mask_of(thread.native_id)
        assert signal.SIGTERM not in mask_of(threading.get_native_id())
    finally:
        watcher.stop()
