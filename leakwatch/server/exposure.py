"""What one watcher exposes: its collector in the application's prometheus_client registry
(`registry=`), and leakwatch's own HTTP server on the `port` option.

Failures are logged, never raised into the host. A sibling (a worker of a master that runs no
leakwatch) that finds the port taken by another sibling publishes its report for that one and
asks again after each tick (`serve_later`), so it takes the port over when the other exits.
Nothing here is imported until a watcher exposes something: most processes never serve.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any

from leakwatch.config import Config

if TYPE_CHECKING:
    from leakwatch.exporters.prometheus import LeakwatchCollector, ReportSource
    from leakwatch.server.standalone import MetricsServer

logger = logging.getLogger(__name__)


class Exposure:
    """The collector registration and the standalone server of one watcher (`source`)."""

    def __init__(self, source: ReportSource, config: Config, registry: Any = None) -> None:
        self._source = source
        self._config = config
        self._registry = registry
        self._collector: LeakwatchCollector | None = None
        self._server: MetricsServer | None = None
        self.serve_later = False  # a sibling whose port another sibling holds
        self._waiting: MetricsServer | None = None  # built, not yet bound (a sibling's retries)

    @property
    def active(self) -> bool:
        return self._server is not None or self._collector is not None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) the server listens on, or None when it is not serving."""
        server = self._server
        return None if server is None else server.address

    def start(self, role: str) -> None:
        """Register the collector and start the server, as asked."""
        if self._registry is not None and self._collector is None:
            try:
                from leakwatch.exporters.prometheus import LeakwatchCollector

                collector = LeakwatchCollector(self._source)
                self._registry.register(collector)
                self._collector = collector
            except Exception as e:  # a registry that already has these names, or not a registry
                logger.error("leakwatch: cannot register its metrics in the given registry: %s", e)
        self.serve(role)

    def serve(self, role: str) -> None:
        """Serve HTTP on the port option, if set and `role` serves (a worker publishes instead)."""
        host, port = self._config.host, self._config.port
        if port is None or self._server is not None or role == "worker":
            return
        try:
            from leakwatch.server.standalone import MetricsServer

            # A sibling asks again after each tick: the app and its registry are built once.
            server = self._waiting or MetricsServer(self._source, host, port)
            self._waiting = server
            shown, bound = server.start()
        except OSError as e:
            if role == "sibling" and e.errno == errno.EADDRINUSE:
                if not self.serve_later:
                    logger.info(
                        "leakwatch: port %s is served by another worker of this server; this worker's report "
                        "is published for it (and it takes the port over if that worker exits)",
                        port,
                    )
                self.serve_later = True
                return
            hint = (
                "; if the processes of one server each start leakwatch, start it in their master with "
                "prefork=master, or have them publish into workers_dir for `leakwatch serve`"
                if e.errno == errno.EADDRINUSE
                else ""
            )
            self._cannot_serve(e, hint)
            return
        except Exception as e:
            self._cannot_serve(e, "")
            return
        self._server, self._waiting, self.serve_later = server, None, False
        shown = f"[{shown}]" if ":" in shown else shown
        logger.info("leakwatch: serving /metrics and /api/suspects on http://%s:%d/", shown, bound)

    def _cannot_serve(self, error: Exception, hint: str) -> None:
        logger.error(
            "leakwatch: cannot serve HTTP on %s port %s: %s; sampling goes on without the server (port=0 picks a free port%s)",
            self._config.host,
            self._config.port,
            error,
            hint,
        )

    def stop(self, timeout: float | None = 2.0) -> None:
        """Stop serving and unregister the collector (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(2.0 if timeout is None else min(timeout, 2.0))
        collector, self._collector = self._collector, None
        if collector is not None:
            try:
                self._registry.unregister(collector)
            except KeyError:
                pass

    def abandon(self) -> None:
        """In a forked child: the parent keeps serving on its socket; the child closes its copy
        (no I/O but a close)."""
        if self._server is not None:
            self._server.abandon()
            self._server = None
