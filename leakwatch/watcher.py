"""The periodic thread, its lifecycle and the wiring: runs the pipeline (`leakwatch.pipeline`)
each tick, publishes its immutable `Report` (to readers, the report file, a pre-fork master),
serves it (collector, HTTP server, graphs), and stays safe across fork and exit.

Lifecycle habits follow opentelemetry's PeriodicExportingMetricReader: a named daemon thread
looping on `stop.wait(interval)` (so stop is immediate), every tick guarded so the thread never
dies of a bad one, a `sample_now()` that runs one cycle on the caller's thread, an idempotent
bounded `stop()`, and atexit registered on start and unregistered on stop.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.files import write_atomically
from leakwatch.graphdir import GraphDir
from leakwatch.model import Report, Suspect
from leakwatch.pipeline import Pipeline
from leakwatch.postmortem import PostMortem
from leakwatch.prefork.member import PUBLISHING, Membership
from leakwatch.prefork.slots import WorkerReport
from leakwatch.probes.process import run_and_wait_seconds
from leakwatch.sampler import Sampler
from leakwatch.server.exposure import Exposure
from leakwatch.snapshots import Baseline
from leakwatch.threads import start_thread

if TYPE_CHECKING:  # imported when used: most processes never serve, and import time is the host's
    from leakwatch import refgraph

logger = logging.getLogger(__name__)

THREAD_NAME = "leakwatch"
# How often a worker looks for a graph its master asks for (one stat of a file).
GRAPH_REQUEST_POLL_SECONDS = 1.0


class Watcher:
    """Samples the heap on a background thread and keeps the current leak verdict.

    Build with a `Config` or keyword options (see `leakwatch.config.OPTIONS`; keyword >
    ``LEAKWATCH_*`` > default). Nothing runs until `start()` (or `sample_now()`, which runs one
    cycle on the caller's thread). `report()` and `suspects()` are cheap and thread-safe: they
    return the latest immutable report. Usable as a context manager (start on enter, stop on exit).

    With the `port` option, `start()` also serves `/metrics` and `/api/suspects` on `host`
    (127.0.0.1 by default) and `server_address` tells where; a port that cannot be bound is
    logged and sampling goes on without the server. With `registry=` (a prometheus_client
    `CollectorRegistry`), `start()` registers leakwatch's collector there and `stop()` removes it.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        registry: Any = None,
        **options: Any,
    ) -> None:
        if config is not None and options:
            config = Config.from_options(env={}, **{**config.options(), **options})
        self.config = config if config is not None else Config.from_options(**options)
        self._clock = clock
        self._epoch = time.time() - clock()
        self._sampler = Sampler(self.config, clock)
        self._pipeline = Pipeline(self.config, clock, self._epoch, self._sampler)
        self._report = self._pipeline.report
        self._tick_errors = 0
        self._next_tick_at = 0.0
        self._tick_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._fork_locked = False
        self._exposure = Exposure(self, self.config, registry)
        # After-tick duties, as the options ask.
        self._graph_dir = GraphDir(self.config) if self.config.graph_dir else None
        self._postmortem = PostMortem(self.config) if self.config.postmortem_at > 0 else None
        self._baseline = Baseline(self.config) if self.config.baseline_file else None
        self._duty_errors: dict[str, int] = {}  # failures of each after-tick duty
        self._causes_logged: set[tuple[str, str, object]] = set()
        self._prefork = Membership(self.config)
        self._register_fork_hook()

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def role(self) -> str:
        """This process's part in a pre-forking server: "master", "worker" or "single"."""
        return self._prefork.role

    @property
    def running(self) -> bool:
        if self.role == "master":
            return self._prefork.serving and self._pid == os.getpid()
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def start(self) -> Watcher:
        """Start the background thread (idempotent). Returns self. A disabled watcher stays idle.

        A pre-fork master (`role == "master"`) starts no thread: it serves its workers'
        reports, and each process it forks starts sampling as a worker."""
        if not self.config.enabled or self.running:
            return self
        if self.role == "master":
            return self._start_master()
        self._stop_event = threading.Event()
        try:
            thread = start_thread(self._run, THREAD_NAME)
        except RuntimeError:
            # The interpreter is shutting down: starting a thread now would raise into the host.
            logger.debug("leakwatch: not starting during interpreter shutdown")
            return self
        self._thread = thread
        atexit.register(self._stop_at_exit)
        self._exposure.start(self.role)
        if self.config.tracemalloc == "always":
            with self._tick_lock:
                self._pipeline.tracing.open(self._clock())
        return self

    def _start_master(self) -> Watcher:
        if self._exposure.active or not self._prefork.open_master():
            return self
        self._stop_event = threading.Event()
        atexit.register(self._stop_at_exit)
        self._exposure.start(self.role)
        return self

    @property
    def workers_dir(self) -> str:
        """The directory a pre-fork master's workers publish into ("" otherwise)."""
        return self._prefork.directory if self.role in ("master", "worker", "sibling") else ""

    def worker_reports(self) -> list[WorkerReport]:
        """A pre-fork master's live workers' latest reports, by slot ([] in other roles)."""
        return self._prefork.worker_reports()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop sampling; idempotent. Waits at most `timeout` seconds; returns whether it stopped.

        Safe from any thread, the watcher's own included (a logging handler may call it): the
        thread then closes its tracing window and writes the report file as it leaves.
        """
        self._stop_event.set()
        self._prefork.serving = False
        atexit.unregister(self._stop_at_exit)
        self._exposure.stop(timeout)
        thread = self._thread
        if thread is threading.current_thread():
            return True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._thread = None
            return True
        self._finish()
        return True

    def _finish(self) -> None:
        """Close our tracing window and write the report file (once sampling has ended); a
        worker withdraws its report, a master removes the directory it made."""
        if self.role == "master":
            self._prefork.leave()
            return
        if not self._tick_lock.acquire(timeout=5.0):
            return
        try:
            self._pipeline.tracing.close()
            self._write_report_file()
            self._prefork.leave()
        finally:
            self._tick_lock.release()

    @property
    def server_address(self) -> tuple[str, int] | None:
        """(host, port) the HTTP server listens on, or None when it is not serving."""
        return self._exposure.address

    def _stop_at_exit(self) -> None:
        self.stop(timeout=1.0)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        stop = self._stop_event
        try:
            self._prefork.join()
            with self._tick_lock:
                self._pipeline.governor.observe_contention(run_and_wait_seconds())
            self._next_tick_at = self._clock() + self._pipeline.governor.interval
            while not stop.wait(self._next_wait()):
                if self._open_planned_window():
                    continue
                self._answer_graph_request()
                if self._clock() < self._pipeline.tracing.due(self._next_tick_at) - 0.005:
                    continue  # woke to look for a graph request only (a tick, or a window's end, is later)
                self._tick_safely()
                self._prefork.publish(self._report)
                if self._exposure.serve_later:
                    self._exposure.serve(self.role)
                pipeline = self._pipeline
                self._next_tick_at = self._clock() + pipeline.tracing.gap(pipeline.governor.interval)
        finally:
            if stop.is_set():  # not a thread lost to fork
                self._finish()

    def _next_wait(self) -> float:
        """Seconds to what the thread does next: a tick, opening or closing a tracing window, or
        (in a process that publishes to a master or its siblings) looking for a graph request."""
        due = self._pipeline.tracing.due(self._next_tick_at) - self._clock()
        if self.role in PUBLISHING:
            due = min(due, GRAPH_REQUEST_POLL_SECONDS)
        return max(0.005, due)

    def _answer_graph_request(self) -> None:
        """Draw the graph the process serving this worker asks for, if it asks."""
        request = self._prefork.graph_request()
        if request is None:
            return
        try:
            from leakwatch.refgraph.rendering import as_bytes

            body = as_bytes(self.graph(request.target, request.format, samples=request.samples, max_depth=request.depth))
        except LeakwatchError as e:
            self._prefork.answer_graph(request, None, str(e))
        except Exception:
            logger.warning("leakwatch: drawing a graph a master asked for failed", exc_info=True)
            self._prefork.answer_graph(request, None, "drawing the graph failed (see the worker's log)")
        else:
            self._prefork.answer_graph(request, body)

    def _open_planned_window(self) -> bool:
        """Start the tracing window planned for now, if one is; True when it started."""
        at = self._pipeline.tracing.planned_at
        if at is None or self._clock() < at - 0.005:
            return False
        with self._tick_lock:
            self._pipeline.tracing.open_planned(self._clock())
        return True

    def _tick_safely(self) -> None:
        try:
            self.sample_now()
        except Exception:
            self._tick_errors += 1
            self._report = dataclasses.replace(self._report, errors={**self._report.errors, "watcher": self._tick_errors})
            logger.warning("leakwatch: a sampling tick failed; the next one will run", exc_info=self._tick_errors == 1)
        graph_dir, postmortem, baseline = self._graph_dir, self._postmortem, self._baseline
        if graph_dir is not None:
            self._guarded("graph_dir", lambda: graph_dir.serve(self._report.suspects, self._find_holders))
        if postmortem is not None:
            self._guarded("postmortem", lambda: postmortem.check(self._report, self._find_holders))
        if baseline is not None:
            self._guarded("baseline", lambda: baseline.after_tick(self._report, self.snapshot))

    def _guarded(self, duty: str, run: Callable[[], object]) -> None:
        """A duty that must never cost the watcher its thread: a failure counts in the report's
        errors under the duty's name, logged with its traceback once per cause (then at DEBUG)."""
        try:
            run()
        except Exception as e:
            self._duty_errors[duty] = self._duty_errors.get(duty, 0) + 1
            cause = (duty, type(e).__name__, getattr(e, "errno", None))
            first = cause not in self._causes_logged
            self._causes_logged.add(cause)
            logger.log(logging.WARNING if first else logging.DEBUG, "leakwatch: %s failed: %s", duty, e, exc_info=first)

    # --- fork safety ----------------------------------------------------------------------------

    def _register_fork_hook(self) -> None:
        _FORK_WATCHERS.add(self)
        global _fork_hooks_registered
        if not _fork_hooks_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(
                before=lambda: _each("_before_fork"),
                after_in_parent=lambda: _each("_after_fork_in_parent"),
                after_in_child=lambda: _each("_after_fork_in_child"),
            )
            _fork_hooks_registered = True

    def _before_fork(self) -> None:
        if self.role == "master" and self.config.freeze and self.config.enabled:
            # The preloaded heap goes to the permanent generation, which no census walks, so a
            # worker's census does not touch (and copy) the pages it shares with the master.
            gc.freeze()
        # Hold the tick lock across fork so no census is mid-flight: a child forked during
        # one would keep the list of every object alive forever.
        self._fork_locked = self._tick_lock.acquire(timeout=FORK_LOCK_TIMEOUT)

    def _after_fork_in_parent(self) -> None:
        if self._fork_locked:
            self._fork_locked = False
            self._tick_lock.release()

    def _after_fork_in_child(self) -> None:
        # No logging or I/O here: another thread may have held the logging lock at fork.
        was_running = self._thread is not None and not self._stop_event.is_set()
        # A worker of a serving master samples, and publishes where the master reads.
        was_running = self._prefork.after_fork_in_child() or was_running
        self._fork_locked = False
        self._tick_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread = None
        self._pid = os.getpid()
        self._exposure.abandon()
        # The child is a new process: its warm-up, history and verdict start afresh.
        self._pipeline = Pipeline(self.config, self._clock, self._epoch, self._sampler, self._pipeline.governor.slowdown)
        self._report = self._pipeline.report
        self._tick_errors = 0
        if was_running:
            try:
                thread = start_thread(self._run, THREAD_NAME)
            except RuntimeError:
                return
            self._thread = thread

    # --- one cycle ------------------------------------------------------------------------------

    def sample_now(self) -> Report:
        """Run one full cycle (sample, record, decide) on the caller's thread; return the report."""
        with self._tick_lock:
            report = self._tick()
            # A process killed by a signal it does not handle (SIGTERM, by default) never reaches
            # stop(): the file always holds the last tick's report (written before it is
            # published, so whoever sees a report can rely on the file having it).
            written = time.thread_time()
            self._write_report_file(report)
            self._pipeline.bill(time.thread_time() - written)
            self._report = report
            return report

    def _tick(self) -> Report:
        report = self._pipeline.run(threading.current_thread() is self._thread, self._tick_errors)
        if self._duty_errors:
            report = dataclasses.replace(report, errors={**report.errors, **self._duty_errors})
        for extra in (self._postmortem, self._baseline):
            if extra is not None:
                report = extra.annotate(report)
        return report

    # --- referrer graphs ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A snapshot of this process (see `leakwatch.snapshots`): the whole census, taken now,
        with the latest report's sites, process memory and suspects. No tick runs meanwhile."""
        from leakwatch import snapshots
        from leakwatch.probes.census import CensusProbe

        census = self._sampler.census or CensusProbe()
        with self._tick_lock:
            types = census.read(None, self._pipeline.history.own_objects())
            report = self._report
        return snapshots.make(report, types)

    def graph(
        self,
        target: Suspect | str,
        format: str = "json",  # noqa: A002 - the public word
        *,
        samples: int = 8,
        max_depth: int = 24,
        budget_seconds: float | None = None,
        reprs: bool | None = None,
    ) -> Any:
        """Who holds `target` (a type or site suspect, one of this watcher's suspect ids, a type
        name or a site): see `leakwatch.graph`. `budget_seconds` and `reprs` default to the
        `graph_budget` and `graph_reprs` options. No census runs meanwhile: a census's list of
        every object would look like a holder of everything."""
        from leakwatch import refgraph

        refgraph.check_format(format)
        found = self._find_holders(target, samples=samples, max_depth=max_depth, budget_seconds=budget_seconds, reprs=reprs)
        return refgraph.render(found, format)

    def _find_holders(
        self,
        target: Suspect | str,
        *,
        samples: int = 8,
        max_depth: int = 24,
        budget_seconds: float | None = None,
        reprs: bool | None = None,
    ) -> refgraph.Graph:
        from leakwatch import refgraph

        wanted = refgraph.resolve_target(target, self._report.suspects)
        budget = self.config.graph_budget if budget_seconds is None else budget_seconds
        if not self._tick_lock.acquire(timeout=budget):
            raise LeakwatchError("a sampling tick held leakwatch busy past the graph's time budget; try again")
        try:
            return refgraph.find_paths(
                wanted.key,
                kind=wanted.kind,
                samples=samples,
                max_depth=max_depth,
                budget_seconds=budget,
                reprs=self.config.graph_reprs if reprs is None else reprs,
            )
        finally:
            self._tick_lock.release()

    # --- results --------------------------------------------------------------------------------

    def report(self) -> Report:
        """The latest report (immutable; safe to read from any thread)."""
        return self._report

    def suspects(self) -> list[Suspect]:
        """Current suspects, types first, fastest-growing first within a kind. An empty list
        before `report().judged` means no verdict yet, not no leak (`report().summary()` says which)."""
        return list(self._report.suspects)

    def _write_report_file(self, report: Report | None = None) -> None:
        path = self.config.report_file.replace("{pid}", str(os.getpid()))
        if path:
            self._guarded("report_file", lambda: write_atomically(path, json.dumps((report or self._report).to_dict())))


# --- fork hooks: registered once for all watchers --------------------------------------------------

FORK_LOCK_TIMEOUT = 2.0
_FORK_WATCHERS: weakref.WeakSet[Watcher] = weakref.WeakSet()
_fork_hooks_registered = False


def _each(hook: str) -> None:
    """Run one fork hook of every watcher."""
    for watcher in list(_FORK_WATCHERS):
        getattr(watcher, hook)()
