"""The process-wide watcher and the functions `import leakwatch` offers around it.

`start()` makes one watcher for the process (or returns the running one), `stop()` ends it,
`suspects()`, `graph()` and `snapshot()` read it; `wsgi_app()` and `asgi_app()` serve it under a web app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from leakwatch.config import Config
from leakwatch.model import Suspect
from leakwatch.watcher import Watcher

logger = logging.getLogger(__name__)

_default: Watcher | None = None
_default_lock = threading.Lock()


def start(*, registry: Any = None, **options: Any) -> Watcher:
    """Start the process-wide watcher, or return the running one.

    Options as for `Watcher` (`port=10464` serves /metrics; `registry=` registers the collector
    in an application's prometheus_client registry). A second call while it runs returns the
    running watcher, with a warning if its options differ from the running ones.
    """
    global _default
    with _default_lock:
        if _default is not None and (_default.running or not _default.config.enabled):
            wanted = Config.from_options(**options)
            if not _default.running and wanted != _default.config:
                _default = Watcher(wanted, registry=registry).start()
                return _default
            if wanted != _default.config:
                logger.warning("leakwatch: already running with other options; keeping the running watcher")
            return _default
        _default = Watcher(registry=registry, **options).start()
        return _default


def stop(timeout: float | None = 5.0) -> bool:
    """Stop the process-wide watcher, if any; returns whether it stopped within `timeout`."""
    global _default
    with _default_lock:
        watcher = _default
        if watcher is None:
            return True
        stopped = watcher.stop(timeout)
        if stopped:
            _default = None
        return stopped


def suspects() -> list[Suspect]:
    """Current suspects of the process-wide watcher ([] when none runs, and before its first
    verdict is possible: `current().report().summary()` tells "no verdict yet" from "no leak")."""
    watcher = _default
    return [] if watcher is None else watcher.suspects()


def current() -> Watcher | None:
    """The process-wide watcher, if one was started."""
    return _default


def graph(
    target: Suspect | str,
    format: str = "json",  # noqa: A002 - the public word
    *,
    samples: int = 8,
    max_depth: int = 24,
    budget_seconds: float = 10.0,
    reprs: bool | None = None,
) -> Any:
    """Who holds a leak: retention paths from roots to sampled live instances.

    `target` is a type or site `Suspect`, a suspect id of the process-wide watcher, a type name
    (`module.QualName`, builtins bare) or a site (`path/file.py:LINE`, while tracemalloc
    traces). Returns a dict ("json"), DOT text ("dot") or SVG bytes ("svg", needs Graphviz's
    `dot`). Runs on the caller's thread: a few walks of the heap (see `leakwatch.refgraph`),
    with sampling paused meanwhile. Raises `LeakwatchError` for a target that names nothing a
    graph can follow. `reprs=True` (or the running watcher's `graph_reprs` option) adds scrubbed,
    truncated reprs of the objects on each path, which runs their `__repr__`: off by default.
    """
    watcher = _default
    if watcher is not None:
        return watcher.graph(target, format, samples=samples, max_depth=max_depth, budget_seconds=budget_seconds, reprs=reprs)
    from leakwatch import refgraph

    refgraph.check_format(format)
    wanted = refgraph.resolve_target(target, ())
    found = refgraph.find_paths(
        wanted.key, kind=wanted.kind, samples=samples, max_depth=max_depth, budget_seconds=budget_seconds, reprs=bool(reprs)
    )
    return refgraph.render(found, format)


def snapshot(path: str | None = None) -> dict[str, Any]:
    """A snapshot of this process's memory (see `leakwatch.snapshots`): the whole census taken
    now, with the process-wide watcher's latest sites, process memory and suspects (their
    retained sizes included) when one runs. Written to `path` as JSON when given, for
    `leakwatch diff` to compare with a later one. Runs on the caller's thread (one walk of the
    heap)."""
    watcher = _default
    if watcher is not None:
        doc = watcher.snapshot()
    else:
        from leakwatch import snapshots
        from leakwatch.model import Report
        from leakwatch.probes.census import CensusProbe

        doc = snapshots.make(Report(), CensusProbe().read())
    if path is not None:
        import json

        from leakwatch.files import write_atomically

        write_atomically(path, json.dumps(doc, indent=1).encode() + b"\n")
    return doc


def wsgi_app(watcher: Watcher | None = None) -> Callable[..., Any]:
    """A WSGI app serving /metrics and /api/suspects for `watcher` (default: the process-wide
    one at request time; 503 on /api/suspects while none runs). Mount it under a web app."""
    from leakwatch.server.apps import make_wsgi_app

    return make_wsgi_app(watcher if watcher is not None else current)


def asgi_app(watcher: Watcher | None = None) -> Callable[..., Any]:
    """An ASGI app serving /metrics and /api/suspects for `watcher` (default: the process-wide
    one at request time). Mount it under a web app, e.g. Starlette's `app.mount("/leakwatch", ...)`."""
    from leakwatch.server.apps import make_asgi_app

    return make_asgi_app(watcher if watcher is not None else current)
