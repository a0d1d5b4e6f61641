"""leakwatch: a memory-leak detector that long-running Python services leave switched on.

    import leakwatch
    leakwatch.start(interval=5)      # background thread; returns the Watcher
    leakwatch.suspects()             # list[Suspect], the current verdict
    leakwatch.start(port=10464)      # also serve /metrics and /api/suspects on 127.0.0.1

Nothing runs at import.
"""

from __future__ import annotations

from leakwatch._version import __version__
from leakwatch.api import asgi_app, graph, snapshot, start, stop, suspects, wsgi_app
from leakwatch.config import Config
from leakwatch.errors import ConfigError, LeakwatchError, MissingDependency, MissingTool
from leakwatch.model import Report, Suspect
from leakwatch.watcher import Watcher

__all__ = [
    "Config",
    "ConfigError",
    "LeakwatchError",
    "MissingDependency",
    "MissingTool",
    "Report",
    "Suspect",
    "Watcher",
    "__version__",
    "asgi_app",
    "graph",
    "snapshot",
    "start",
    "stop",
    "suspects",
    "wsgi_app",
]
