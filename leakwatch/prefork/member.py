"""One watcher's part in a pre-forking server: its role, the directory its reports go
through, and, in a worker, the slot it holds."""

from __future__ import annotations

import logging
import os

from leakwatch.config import Config
from leakwatch.model import Report
from leakwatch.prefork import graphs, roles, slots

logger = logging.getLogger(__name__)


# Roles that publish their report into a shared directory, and roles that serve one.
PUBLISHING = ("worker", "sibling")
SERVING = ("master", "sibling")


class Membership:
    """A master serves its workers' reports; a worker claims a slot and publishes its report
    into it after each tick; a sibling does both (when it holds the port); a "single" process
    does neither (every method is then a no-op)."""

    def __init__(self, config: Config) -> None:
        self.role = roles.role(config)
        self.directory = config.workers_dir
        self.serving = False  # a master between open_master() and stop
        self._own_directory = False  # made by this master, removed when it leaves
        self._slot: slots.Slot | None = None
        self._environ_before: str | None = None  # WORKERS_DIR_ENV before open_master set it

    def open_master(self) -> bool:
        """Adopt the configured directory, or make one, and tell spawned workers where it is.
        False (logged) when there is none to serve from."""
        directory = self.directory
        if not directory or not slots.adopt_directory(directory):
            try:
                directory = slots.make_directory()
            except OSError as e:
                logger.error("leakwatch: cannot make a directory for the workers' reports: %s; not serving them", e)
                return False
            self._own_directory = True
        self.directory = directory
        # Workers a master spawns (uvicorn --workers) rather than forks find it here.
        self._environ_before = os.environ.get(slots.WORKERS_DIR_ENV)
        os.environ[slots.WORKERS_DIR_ENV] = directory
        self.serving = True
        return True

    def join(self) -> None:
        """As a worker or sibling: claim a slot to publish into (a failure is logged; sampling
        goes on)."""
        if self.role not in PUBLISHING:
            return
        try:
            if self.role == "sibling":
                self.directory = slots.sibling_directory(os.getppid())
            self._slot = slots.Slot.claim(self.directory)
        except OSError as e:
            logger.error("leakwatch: cannot publish this worker's report in %s: %s; sampling goes on", self.directory, e)

    def publish(self, report: Report) -> None:
        slot = self._slot
        if slot is None:
            return
        try:
            slot.publish(report)
        except OSError as e:
            logger.warning("leakwatch: cannot write this worker's report to %s: %s", slot.path, e)

    def leave(self) -> None:
        """A worker withdraws its report and frees its slot; a master removes the directory it made."""
        if self.role == "master":
            if self._own_directory:
                slots.remove_directory(self.directory)
            if self.serving or os.environ.get(slots.WORKERS_DIR_ENV) == self.directory:
                # The process goes on without this master: later watchers are no workers of it.
                if self._environ_before is None:
                    os.environ.pop(slots.WORKERS_DIR_ENV, None)
                else:
                    os.environ[slots.WORKERS_DIR_ENV] = self._environ_before
            return
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def graph_request(self) -> graphs.GraphRequest | None:
        """A graph the process serving this worker asks it to draw, taken; None when none waits."""
        if self._slot is None:
            return None
        return graphs.take(self.directory, self._slot.number)

    def answer_graph(self, request: graphs.GraphRequest, body: bytes | None, error: str = "") -> None:
        if self._slot is None:
            return
        try:
            graphs.answer(self.directory, self._slot.number, request, body, error)
        except OSError as e:
            logger.warning("leakwatch: cannot answer a graph request in %s: %s", self.directory, e)

    def worker_reports(self) -> list[slots.WorkerReport]:
        """The live workers' latest reports, by slot, as a master or sibling sees them ([] in
        other roles)."""
        if self.role not in SERVING or not self.directory:
            return []
        return slots.live_reports(self.directory)

    def after_fork_in_child(self) -> bool:
        """In a forked child (no logging or I/O but closing a file): a serving master's child
        becomes its worker; a worker's child forgets the parent's slot. True when the child
        became a worker and must start sampling."""
        if self._slot is not None:
            self._slot.abandon()  # the parent's number stays the parent's
            self._slot = None
        if self.role == "master" and self.serving:
            self.role = "worker"
            self._own_directory = False
            self.serving = False
            return True
        return False
