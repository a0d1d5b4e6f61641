"""Referrer graphs for processes that serve no HTTP, through the `graph_dir` option.

Each tick, the watcher asks `GraphDir.serve` to draw:
- the target named in a request file, `<graph_dir>/graph-request` (`echo <suspect id, type or
  site> > graph-request`; an empty request means every type suspect), taken once it has not
  changed for `REQUEST_SETTLE_SECONDS` and renamed first so that one process takes it even when
  several watch one directory;
- with `graph_on_suspect`, each new suspect once (a type at once; a site while it is traced,
  since its objects are known by their allocation traceback).

At most `GRAPHS_PER_TICK` graphs are drawn a tick; the rest wait for the next ticks, in order.

Each graph is written as `graph-<pid>-<target>.json` and `.dot`, whole (`files.write_atomically`);
the newest `MAX_GRAPH_FILES` such files are kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.files import read_small, write_atomically
from leakwatch.model import Suspect

if TYPE_CHECKING:  # drawn only when asked for
    from leakwatch.refgraph import Graph

logger = logging.getLogger(__name__)

REQUEST_FILE = "graph-request"
# What a request may hold: a suspect id, a type name, or a site (path.py:LINE).
REQUEST_SYNTAX = re.compile(r"[0-9a-f]{12}|[A-Za-z_][\w.<>]*|[^\x00-\x1f]+\.py:\d+")
# The graphs this module writes (and prunes): graph-<pid>-<target>.json and .dot.
GRAPH_FILE = re.compile(r"graph-\d+-[\w.-]+\.(?:json|dot)")
MAX_GRAPH_FILES = 40  # 20 graphs, a .json and a .dot each
GRAPHS_PER_TICK = 3
MAX_WAITING = 100  # targets waiting for a later tick; more are dropped, and logged
# `echo id > graph-request` creates the file before it writes the id.
REQUEST_SETTLE_SECONDS = 0.2
MAX_REQUEST_BYTES = 300

FindHolders = Callable[[str], "Graph"]


class GraphDir:
    """Draws requested and new suspects' graphs into `config.graph_dir` ({pid} expanded)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._graphed: set[str] = set()  # suspects drawn, or waiting to be, for graph_on_suspect
        self._waiting: list[str] = []  # targets for the next ticks, oldest first

    def serve(self, suspects: Sequence[Suspect], find_holders: FindHolders) -> None:
        """Draw what is asked for now; `find_holders(target)` searches the heap (or raises
        `LeakwatchError` for a target it cannot follow, logged)."""
        directory = self._config.graph_dir.replace("{pid}", str(os.getpid()))
        wanted = self._requested(directory, suspects)
        if self._config.graph_on_suspect:
            traced = tracemalloc.is_tracing()
            for s in suspects:
                new = s.id not in self._graphed and s.id not in wanted and s.id not in self._waiting
                if new and (s.kind == "type" or (s.kind == "site" and traced)):
                    self._graphed.add(s.id)
                    wanted.append(s.id)
                    break  # at most one new suspect a tick
        for target in wanted:
            if target in self._waiting:
                continue
            if len(self._waiting) >= MAX_WAITING:
                logger.warning("leakwatch: %d graphs are waiting to be drawn; %r is dropped", MAX_WAITING, target[:80])
                continue
            self._waiting.append(target)
        now, self._waiting = self._waiting[:GRAPHS_PER_TICK], self._waiting[GRAPHS_PER_TICK:]
        ids = {s.id for s in suspects}
        for target in now:
            if target in ids:
                self._graphed.add(target)  # drawn on request: not again as a new suspect
            self._write(directory, target, find_holders)

    @staticmethod
    def _requested(directory: str, suspects: Sequence[Suspect]) -> list[str]:
        request = os.path.join(directory, REQUEST_FILE)
        taken = f"{request}.{os.getpid()}"
        try:
            # A file still being written waits for a later tick.
            if abs(time.time() - os.lstat(request).st_mtime) < REQUEST_SETTLE_SECONDS:
                return []
            os.rename(request, taken)  # one process takes a request, even with several watching
        except OSError:
            return []
        try:
            raw = read_small(taken, MAX_REQUEST_BYTES + 1)
        except OSError as e:
            # A link or a device: nothing of what it points at is read, or told.
            logger.warning("leakwatch: ignored %s: not a regular file, or not readable (%s)", request, e.strerror or e)
            return []
        finally:
            try:
                os.unlink(taken)
            except OSError:
                pass
        if len(raw) > MAX_REQUEST_BYTES:
            logger.warning("leakwatch: ignored %s: a request is at most %d bytes", request, MAX_REQUEST_BYTES)
            return []
        wanted = raw.decode("utf-8", errors="replace").strip()
        if wanted and not REQUEST_SYNTAX.fullmatch(wanted):
            logger.warning("leakwatch: ignored %s: it holds no suspect id, type name or site (path.py:LINE)", request)
            return []
        return [wanted] if wanted else [s.id for s in suspects if s.kind == "type"]

    @staticmethod
    def _write(directory: str, target: str, find_holders: FindHolders) -> None:
        try:
            found = find_holders(target)
        except LeakwatchError as e:
            logger.warning("leakwatch: no graph for %r: %s", target[:80], e)
            return
        stem = os.path.join(directory, f"graph-{os.getpid()}-{_file_safe(target)}")
        write_graph(stem, found)
        logger.info("leakwatch: wrote the graph of %s to %s.json and .dot", target[:80], stem)
        _keep_newest(directory, GRAPH_FILE, MAX_GRAPH_FILES)


def write_graph(stem: str, found: Graph) -> None:
    """A graph as `<stem>.json` and `<stem>.dot` (`dot -Tsvg` draws the latter), each whole."""
    from leakwatch.refgraph import to_dot

    write_atomically(stem + ".json", json.dumps(found.to_dict(), indent=2) + "\n")
    write_atomically(stem + ".dot", to_dot(found))


def _file_safe(target: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in target)[:100]


def _keep_newest(directory: str, name: re.Pattern[str], keep: int) -> None:
    """Delete all but the newest `keep` files whose whole names match `name` (leakwatch's own:
    whatever else lives in the directory is never touched)."""
    entries = []
    with os.scandir(directory) as it:
        for entry in it:
            if name.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                entries.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
    for _, path in sorted(entries, reverse=True)[keep:]:
        try:
            os.unlink(path)
        except OSError:
            pass
