"""Worker slots and the directory a pre-fork master and its workers share.

A slot is a small number, not a pid: a worker takes the lowest free one by holding an
exclusive `flock` on `slot-<n>.lock` for its life. The kernel drops the lock when the process
ends, however it ends (a crash, SIGKILL, gunicorn's `max_requests` recycling), so the next
worker reuses the number and the `worker` label never has more values than workers run at
once. The master, reading the directory, takes a free lock as the sign of a dead worker and
drops its report, so a dead worker's series go away at the next scrape.

Reports are written whole to a temporary file and renamed into place, so a reader never sees
half of one.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import tempfile

from leakwatch.files import write_atomically
from leakwatch.model import Report

logger = logging.getLogger(__name__)

# More slots than any pre-forking server runs workers; a bound on the `worker` label.
MAX_SLOTS = 256
REPORT_FILE = re.compile(r"^worker-(\d+)\.json$")
# Sibling directories: <tmp>/leakwatch-siblings-<uid>-<master pid>.
SIBLINGS_PREFIX = "leakwatch-siblings-"
# Where a master records its pid in the directory its workers publish into.
MASTER_FILE = "master.pid"
# Where a master tells the workers it spawns (rather than forks) which directory to publish into.
WORKERS_DIR_ENV = "LEAKWATCH_WORKERS_DIR"


@dataclasses.dataclass(frozen=True)
class WorkerReport:
    """One live worker's latest report, as the master reads it."""

    slot: int
    pid: int
    report: Report


def adopt_directory(directory: str) -> bool:
    """Take `directory` over as this master's, unless another live master holds it (a new
    gunicorn master re-executed by USR2 inherits its predecessor's environment)."""
    marker = os.path.join(directory, MASTER_FILE)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(marker, encoding="utf-8") as f:
            owner = int(f.read().strip() or 0)
    except FileNotFoundError:
        owner = 0
    except (OSError, ValueError):
        return False
    if owner and owner != os.getpid() and _alive(owner):
        return False
    try:
        with open(marker, "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
    except OSError:
        return False
    return True


def sibling_directory(master_pid: int) -> str:
    """The directory the workers of `master_pid` (a master without leakwatch) share: private to
    this user, made if missing; `OSError` when it cannot be made, or is not this user's own
    private directory (it is at a predictable path). Left by masters gone are removed."""
    base = tempfile.gettempdir()
    prefix = f"{SIBLINGS_PREFIX}{os.getuid()}-"
    directory = os.path.join(base, f"{prefix}{master_pid}")
    try:
        os.mkdir(directory, 0o700)
        _remove_abandoned(base, prefix, master_pid)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(errno.EPERM, f"{directory} is not a private directory of this user's")
    return directory


def _remove_abandoned(base: str, prefix: str, keep: int) -> None:
    """Remove sibling directories whose master has exited (made once per master, so rarely)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :]
        if name.startswith(prefix) and pid.isdigit() and int(pid) != keep and not _alive(int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_directory() -> str:
    """A fresh private directory for a master's workers, marked as this process's."""
    directory = tempfile.mkdtemp(prefix=f"leakwatch-workers-{os.getpid()}-")
    adopt_directory(directory)
    return directory


def remove_directory(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class Slot:
    """A worker's claim on one slot number in `directory`, and where it publishes its report."""

    def __init__(self, directory: str, number: int, fd: int) -> None:
        self.directory = directory
        self.number = number
        self._fd = fd
        self.pid = os.getpid()

    @classmethod
    def claim(cls, directory: str, limit: int = MAX_SLOTS) -> Slot:
        """Take the lowest free slot; `OSError` when the directory is unusable or all are taken."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for number in range(limit):
            fd = os.open(os.path.join(directory, f"slot-{number}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                    continue
                raise
            slot = cls(directory, number, fd)
            # A report a dead worker left under this number is not ours.
            _unlink(slot.path)
            return slot
        raise OSError(errno.ENOSPC, f"all {limit} worker slots in {directory} are taken")

    @property
    def path(self) -> str:
        return os.path.join(self.directory, f"worker-{self.number}.json")

    def publish(self, report: Report) -> None:
        """Write the report where the master reads it (whole, by rename)."""
        write_atomically(self.path, json.dumps({"pid": self.pid, "report": report.to_dict()}))

    def release(self) -> None:
        """Withdraw the report and free the number (idempotent)."""
        if self._fd < 0:
            return
        _unlink(self.path)
        os.close(self._fd)
        self._fd = -1

    def abandon(self) -> None:
        """In a forked child: forget the parent's claim without touching it (no I/O but a close)."""
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:  # in an at-fork hook nothing may raise
                pass
        self._fd = -1


def live_reports(directory: str) -> list[WorkerReport]:
    """The reports of the workers still alive, by slot; a dead worker's report is deleted."""
    out = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        m = REPORT_FILE.match(name)
        if not m:
            continue
        number = int(m.group(1))
        if not _held(os.path.join(directory, f"slot-{number}.lock")):
            _unlink(os.path.join(directory, name))
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                data = json.load(f)
            out.append(WorkerReport(number, int(data["pid"]), Report.from_dict(data["report"])))
        except Exception as e:  # another process's file: whatever is in it, the master goes on
            logger.debug("leakwatch: skipping worker report %s: %s", name, e)
    return sorted(out, key=lambda w: w.slot)


def _held(lock_path: str) -> bool:
    """Whether a live process holds the lock (taking it for a moment when nobody does)."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if this call took it
    return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
