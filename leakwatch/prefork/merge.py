"""A pre-fork master's view of its workers: what the exporter, `/api/suspects` and the page show."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Protocol, runtime_checkable

import psutil

from leakwatch.detector import RSS_TREND
from leakwatch.model import Report
from leakwatch.prefork.slots import WorkerReport


@runtime_checkable
class Master(Protocol):
    """A report source that serves a pre-fork master's workers (a watcher in the master role, or
    in the sibling role: a worker that serves its siblings when the master runs no leakwatch)."""

    role: str

    def report(self) -> Report: ...

    def worker_reports(self) -> list[WorkerReport]: ...


def workers_of(source: object) -> list[WorkerReport] | None:
    """The live workers' reports when `source` serves a pre-fork server's workers; None for any
    other source."""
    if isinstance(source, Master) and source.role in ("master", "sibling"):
        return source.worker_reports()
    return None


def master_pid(source: object) -> int:
    """The pid of the pre-fork master `source` serves for: itself, or a sibling's parent."""
    return os.getppid() if getattr(source, "role", "") == "sibling" else os.getpid()


def parent_of_workers(source: object, live: list[WorkerReport]) -> int | None:
    """The process that started the workers, whose memory is exported beside theirs: a master
    that runs leakwatch, a sibling's parent, or, under `leakwatch serve`, the workers' common
    parent (uWSGI's master); None when they have none or it cannot be read."""
    if getattr(source, "role", "") == "sibling":
        return os.getppid()
    parents = set()
    for w in live:
        try:
            parents.add(psutil.Process(w.pid).ppid())
        except (psutil.Error, OSError):
            return None
    if not parents or parents == {os.getpid()}:
        return os.getpid()
    return parents.pop() if len(parents) == 1 else None


def merged_report(source: Any) -> Report:
    """The report a page shows: a master's is its workers' suspects together, each marked with
    its worker; any other source's is its own."""
    live = workers_of(source)
    if live is None:
        report: Report = source.report()
        return report
    suspects = tuple(
        dataclasses.replace(s, detail=f"worker {w.slot}" + (f"; {s.detail}" if s.detail else ""))
        for w in live
        for s in w.report.suspects
    )
    newest = max((w.report for w in live), key=lambda r: r.time, default=source.report())
    # Suspects' charts; each worker's RSS chart is its own, and a master's page shows none.
    trends = {sid: pts for w in live for sid, pts in w.report.trends.items() if sid != RSS_TREND}
    return dataclasses.replace(
        newest, suspects=suspects, trends=trends, candidates=tuple(c for w in live for c in w.report.candidates)
    )


def suspects_document(source: Any) -> dict[str, Any]:
    """`/api/suspects`: a master's own pid and ticks (or, from a sibling, its master's pid,
    which runs no leakwatch) with each worker's report; any other source's report."""
    live = workers_of(source)
    if live is None:
        document: dict[str, Any] = source.report().to_dict()
        return document
    if source.role == "sibling":
        master = {"pid": master_pid(source), "samples": 0, "served_by": os.getpid()}
    else:
        master = {"pid": master_pid(source), "samples": source.report().samples}
    return {"master": master, "workers": [{"worker": w.slot, "pid": w.pid, **w.report.to_dict()} for w in live]}
