"""The evidence written before an OOM kill: nothing survives a `kill -9`, so when process memory
passes `postmortem_at` of the memory limit (the container's cgroup limit, or `memory_limit`),
leakwatch writes what it knows while it still can.

Once per crossing (memory must fall back under the line, less `REARM_MARGIN`, before it fires
again) it writes into `postmortem_dir` (or `graph_dir`, or the temporary directory):
`postmortem-<pid>-<time>-report.json` (the report: suspects with the memory each holds, their
sites and callers, process memory and the limit), and for the top `POSTMORTEM_GRAPHS` type and
site suspects `postmortem-<pid>-<time>-<id>.json` and `.dot` (who holds them). Every file is
written whole (`files.write_atomically`); a WARNING says where, and names the suspects, so the
container's log holds the gist even when the files die with it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.files import write_atomically
from leakwatch.graphdir import write_graph
from leakwatch.model import Report, human

if TYPE_CHECKING:  # drawn only when memory crosses the line
    from leakwatch.refgraph import Graph

logger = logging.getLogger(__name__)

POSTMORTEM_GRAPHS = 3
# Memory must fall this share of the limit under the line before another crossing counts.
REARM_MARGIN = 0.05

FindHolders = Callable[[str], "Graph"]


class PostMortem:
    """Watches one process's memory against its limit and writes the evidence on a crossing."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._armed = True
        self.written = 0  # post-mortems written by this process
        self.last_at = 0.0  # wall-clock time of the latest

    def check(self, report: Report, find_holders: FindHolders) -> str | None:
        """After a tick: write a post-mortem if memory just crossed the line; the directory
        written to, or None."""
        share = self._config.postmortem_at
        limit = report.memory_limit
        rss = report.process.get("rss", 0.0)
        if share <= 0 or limit <= 0 or rss <= 0:
            return None
        if rss < (share - REARM_MARGIN) * limit:
            self._armed = True
            return None
        if rss < share * limit or not self._armed:
            return None
        self._armed = False
        return self._write(report, rss, limit, find_holders)

    def annotate(self, report: Report) -> Report:
        """The report with how many post-mortems this process wrote."""
        return dataclasses.replace(report, postmortems=self.written) if self.written else report

    def directory(self) -> str:
        config = self._config
        chosen = config.postmortem_dir or config.graph_dir or tempfile.gettempdir()
        return chosen.replace("{pid}", str(os.getpid()))

    def _write(self, report: Report, rss: float, limit: float, find_holders: FindHolders) -> str:
        directory = self.directory()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        stem = os.path.join(directory, f"postmortem-{os.getpid()}-{stamp}")
        os.makedirs(directory, exist_ok=True)
        write_atomically(f"{stem}-report.json", json.dumps(report.to_dict(), indent=1) + "\n")
        drawn = 0
        for s in [s for s in report.suspects if s.kind in ("type", "site")][:POSTMORTEM_GRAPHS]:
            try:
                found = find_holders(s.id)
            except LeakwatchError as e:  # a site while nothing traces, say
                logger.info("leakwatch: post-mortem without the graph of %s %s: %s", s.kind, s.key[:80], e)
                continue
            write_graph(f"{stem}-{s.id}", found)
            drawn += 1
        self.written += 1
        self.last_at = time.time()
        named = "; ".join(s.describe() for s in report.suspects[:POSTMORTEM_GRAPHS]) or "no suspect yet"
        logger.warning(
            "leakwatch: memory at %.0f%% of its limit (%s of %s): post-mortem written to %s-* (the report and %d graphs): %s",
            100 * rss / limit,
            human(rss, "bytes"),
            human(limit, "bytes"),
            stem,
            drawn,
            named,
        )
        return directory
