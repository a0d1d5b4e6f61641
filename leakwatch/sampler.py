"""Runs the enabled probes once and isolates a failing probe; starts no thread."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping

from leakwatch.config import Config
from leakwatch.model import Sample
from leakwatch.probes.census import CensusProbe
from leakwatch.probes.process import ProcessProbe, cgroup_memory_limit
from leakwatch.probes.sites import SiteProbe

logger = logging.getLogger(__name__)

# A container's memory limit rarely changes (an in-place resize); reading it every tick is waste.
LIMIT_REFRESH_SECONDS = 60.0


class Sampler:
    """Reads every enabled probe into one `Sample`.

    A probe that raises is logged (with its traceback the first time, at debug level after)
    and counted in `errors`; the other probes still run.
    """

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.census = CensusProbe() if config.census else None
        self.process = ProcessProbe(uss=config.uss) if config.process else None
        self.sites = (
            SiteProbe(frames=config.trace_frames, max_sites=config.max_series, max_memory=config.trace_max_memory)
            if config.tracemalloc != "off"
            else None
        )
        self.memory_limit = config.memory_limit
        self._cgroup_limit = 0
        self._limit_read_at = float("-inf")
        self.errors: Counter[str] = Counter()
        self.runs: Counter[str] = Counter()
        self.samples = 0

    def forget(self) -> None:
        """Start the counts afresh (in a forked child, a new process)."""
        self.samples = 0
        self.errors.clear()
        self.runs.clear()

    def sample(self, attribute: Collection[str] = (), own: Mapping[str, int] | None = None) -> Sample:
        """One sample; `attribute` names types whose allocation sites to look up while tracing;
        `own` counts leakwatch's own objects by type, for the census to leave out."""
        t = self.clock()
        values: dict[str, dict[str, float]] = {}
        durations: dict[str, float] = {}
        failed: list[str] = []
        type_sites: dict[str, tuple[str, ...]] = {}
        sites = self.sites

        visit = None
        if sites is not None and attribute and sites.active:

            def visit(objs: list[object], types: dict[str, type]) -> None:
                type_sites.update(sites.attribute(objs, types, attribute))

        if self.census is not None:
            census = self.census
            self._run("census", lambda: values.__setitem__("type", census.read(visit, own)), durations, failed)
        if self.process is not None:
            process = self.process
            self._run(
                "process", lambda: values.__setitem__("process", process.read((own or {}).get("py_blocks", 0))), durations, failed
            )
        window = 0
        if sites is not None and sites.active:
            window = sites.window
            self._run("sites", lambda: self._read_sites(sites, values), durations, failed)
        self.samples += 1
        limit = self.memory_limit or self._container_limit(t)
        return Sample(
            t=t,
            values=values,
            durations=durations,
            errors=tuple(failed),
            site_window=window,
            type_sites=type_sites,
            memory_limit=float(limit),
        )

    def _container_limit(self, t: float) -> int:
        """The cgroup memory limit, read again at most once a `LIMIT_REFRESH_SECONDS` (0: none)."""
        if self.process is not None and t - self._limit_read_at >= LIMIT_REFRESH_SECONDS:
            self._cgroup_limit = cgroup_memory_limit() or 0
            self._limit_read_at = t
        return self._cgroup_limit

    @staticmethod
    def _read_sites(sites: SiteProbe, values: dict[str, dict[str, float]]) -> None:
        by_site, blocks = sites.read()
        values["site"] = by_site
        values["site_blocks"] = blocks
        values.setdefault("process", {}).update(sites.overhead())

    def _run(self, name: str, read: Callable[[], None], durations: dict[str, float], failed: list[str]) -> None:
        start = time.perf_counter()
        self.runs[name] += 1
        try:
            read()
        except Exception:
            self.errors[name] += 1
            failed.append(name)
            first = self.errors[name] == 1
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "leakwatch: probe %r failed; the other probes go on",
                name,
                exc_info=first,
            )
        finally:
            durations[name] = time.perf_counter() - start
