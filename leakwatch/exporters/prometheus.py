"""A prometheus_client collector that turns the watcher's latest `Report` into metrics.

It reads the immutable report at scrape time; the sampler thread never sets a gauge, so a
scrape never waits for a census and never sees half a tick. Every metric it can produce is
listed once, in `METRICS`; the reference page docs/reference/metrics.md is generated from it.

Cardinality is bounded whatever the heap holds: at most `max_suspect_series` suspects get
labelled series (the rest are counted in `leakwatch_suspects_omitted`), at most `top_k` types
and `top_k` sites appear in the census metrics, and label values are cut to
`MAX_LABEL_LENGTH` characters (a type keeps its end; a site keeps its allocating frame).
Labels carry type names and source locations, never reprs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import psutil
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from leakwatch.config import Config
from leakwatch.costs import Budget
from leakwatch.model import KINDS, SITE_SEPARATOR, Report, SeriesKey, Suspect, leak_ids
from leakwatch.prefork.merge import parent_of_workers, workers_of

# Longest label value exported; longer type and site strings keep their end (the class or the
# file and line), prefixed by "...".
MAX_LABEL_LENGTH = 120
# Labels of the per-suspect series.
# `leak`: the id of the leak a suspect belongs to (a type and the lines that allocate it are
# one leak; see model.leak_ids), so alerts and the fleet view fold them together.
SUSPECT_LABELS = ("kind", "key", "id", "leak")


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its exposed name, type, labels and meaning."""

    name: str
    type: str  # "gauge", "counter", "histogram" or "info"
    labels: tuple[str, ...]
    help: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("leakwatch_info", "info", ("version", "tracemalloc"), "leakwatch's version and tracemalloc mode."),
    MetricSpec("leakwatch_suspects", "gauge", ("kind",), "Current suspects by kind (type, site, process)."),
    MetricSpec(
        "leakwatch_suspects_omitted", "gauge", (), "Current suspects left out of the per-suspect series by max_suspect_series."
    ),
    MetricSpec("leakwatch_candidates", "gauge", ("kind",), "Growth being watched that is not yet confirmed as a suspect."),
    MetricSpec(
        "leakwatch_suspect_confidence_ratio",
        "gauge",
        SUSPECT_LABELS,
        "1 - p of the suspect's trend test (Mann-Kendall or the steps' sign test).",
    ),
    MetricSpec("leakwatch_suspect_objects", "gauge", SUSPECT_LABELS, "Live objects of a suspect counted in objects."),
    MetricSpec("leakwatch_suspect_bytes", "gauge", SUSPECT_LABELS, "Size of a suspect measured in bytes."),
    MetricSpec(
        "leakwatch_suspect_growth_objects_per_second", "gauge", SUSPECT_LABELS, "Growth rate (Theil-Sen) of an objects suspect."
    ),
    MetricSpec(
        "leakwatch_suspect_growth_bytes_per_second", "gauge", SUSPECT_LABELS, "Growth rate (Theil-Sen) of a bytes suspect."
    ),
    MetricSpec(
        "leakwatch_suspect_since_timestamp_seconds", "gauge", SUSPECT_LABELS, "When the suspect's growth began (Unix time)."
    ),
    MetricSpec(
        "leakwatch_suspect_retained_bytes",
        "gauge",
        SUSPECT_LABELS,
        "Memory a type suspect's objects hold, estimated from the deep sizes of retained_samples of them; "
        "absent until measured.",
    ),
    MetricSpec(
        "leakwatch_suspect_retained_error_bytes",
        "gauge",
        SUSPECT_LABELS,
        "Half-width of the 95% bound on leakwatch_suspect_retained_bytes.",
    ),
    MetricSpec("leakwatch_census_objects", "gauge", ("type",), "Live gc-tracked objects of the top_k most numerous types."),
    MetricSpec("leakwatch_census_types", "gauge", (), "Distinct types in the latest census."),
    MetricSpec("leakwatch_site_bytes", "gauge", ("site",), "Traced bytes still alive of the top_k largest sites, while tracing."),
    MetricSpec("leakwatch_python_allocated_blocks", "gauge", (), "Interpreter memory blocks in use (sys.getallocatedblocks)."),
    MetricSpec(
        "leakwatch_process_resident_bytes",
        "gauge",
        (),
        "Resident set size of the process; under a pre-fork server each worker's, and the master's as worker=\"master\".",
    ),
    MetricSpec("leakwatch_process_uss_bytes", "gauge", (), "Unique set size of the process, when the uss option is on."),
    MetricSpec(
        "leakwatch_memory_limit_bytes", "gauge", (), "The container's memory limit, or the memory_limit option; absent when none."
    ),
    MetricSpec(
        "leakwatch_tracing_active", "gauge", (), "1 while tracemalloc is tracing (a leakwatch window or the app's own), else 0."
    ),
    MetricSpec(
        "leakwatch_tracemalloc_overhead_bytes", "gauge", (), "Memory tracemalloc uses for its own traces (0 when not tracing)."
    ),
    MetricSpec("leakwatch_ticks_total", "counter", (), "Sampling cycles completed."),
    MetricSpec(
        "leakwatch_postmortems_total",
        "counter",
        (),
        "Post-mortems written as process memory crossed postmortem_at of its limit (the report and top suspects' graphs).",
    ),
    MetricSpec("leakwatch_samples_total", "counter", ("probe",), "Times each probe ran."),
    MetricSpec(
        "leakwatch_errors_total", "counter", ("probe",), 'Failures by probe; probe="watcher" counts whole cycles that failed.'
    ),
    MetricSpec("leakwatch_sample_duration_seconds", "histogram", ("phase",), "Time each phase of a cycle took."),
    MetricSpec("leakwatch_cpu_seconds_total", "counter", (), "CPU time spent in sampling cycles."),
    MetricSpec("leakwatch_cpu_budget_ratio", "gauge", (), "The cpu_budget option: the share of one core leakwatch may spend."),
    MetricSpec(
        "leakwatch_cpu_spend_ratio",
        "gauge",
        (),
        "Share of one core sampling spends at the current pace (a tick's smoothed CPU time over the interval).",
    ),
    MetricSpec(
        "leakwatch_core_share_ratio",
        "gauge",
        (),
        "Share of a core this process's threads get when they want one (1 on a core of its own); cpu_budget applies to it.",
    ),
    MetricSpec(
        "leakwatch_trace_budget_ratio",
        "gauge",
        (),
        "The trace_budget option: the share of the application's time tracing windows may cost it.",
    ),
    MetricSpec(
        "leakwatch_trace_spend_ratio",
        "gauge",
        (),
        "Share of the application's time leakwatch's tracing windows have cost it since start (at the measured slowdown).",
    ),
    MetricSpec(
        "leakwatch_trace_slowdown_ratio",
        "gauge",
        (),
        "How many times slower allocation-heavy code runs while tracing, measured in this process; absent until measured.",
    ),
    MetricSpec("leakwatch_trace_windows_total", "counter", (), "Tracing windows leakwatch opened."),
    MetricSpec("leakwatch_trace_seconds_total", "counter", (), "Seconds leakwatch's tracing windows ran, in all."),
    MetricSpec(
        "leakwatch_trace_windows_deferred_total",
        "counter",
        (),
        "Tracing windows put off until trace_budget could pay for them.",
    ),
    MetricSpec("leakwatch_own_memory_bytes", "gauge", (), "Memory held by leakwatch's history."),
    MetricSpec("leakwatch_history_series", "gauge", (), "Time series leakwatch's history keeps."),
    MetricSpec(
        "leakwatch_interval_seconds",
        "gauge",
        (),
        "Time between samples now: the interval option, or longer where a sample costs more than cpu_budget allows.",
    ),
    MetricSpec(
        "leakwatch_window_seconds",
        "gauge",
        (),
        "The detector's window now: the window option, or longer when the interval stretches past a sixteenth of it.",
    ),
    MetricSpec("leakwatch_last_sample_timestamp_seconds", "gauge", (), "When the latest sample was taken (Unix time)."),
    MetricSpec(
        "leakwatch_memory_limit_eta_seconds",
        "gauge",
        (),
        "Time until memory reaches the limit at its growth over the last window (from a pre-fork master: all "
        "workers together); absent without a limit or growth.",
    ),
    MetricSpec("leakwatch_workers", "gauge", (), "Live workers whose reports a pre-fork master serves (only from a master)."),
)
# Exposed only by a pre-fork master.
MASTER_ONLY = frozenset({"leakwatch_workers"})
# Series about the whole process or pod: a master exposes them once, without the worker label.
UNLABELLED = frozenset({"leakwatch_workers", "leakwatch_memory_limit_eta_seconds"})
WORKER_LABELS = ("worker",)
# The worker label of the master's own series (its RSS).
MASTER_WORKER = "master"
_SPECS = {m.name: m for m in METRICS}


@runtime_checkable
class ReportSource(Protocol):
    """What the collector reads: a watcher, or anything with its `config` and `report()`."""

    config: Config

    def report(self) -> Report: ...


def truncate(value: str, limit: int = MAX_LABEL_LENGTH) -> str:
    """Cut a label value to `limit` characters, keeping its end (the class, or file and line)."""
    return value if len(value) <= limit else "..." + value[-(limit - 3) :]


def truncate_site(key: str, limit: int = MAX_LABEL_LENGTH) -> str:
    """Cut a site key to `limit` characters, keeping its allocating frame (the first one, before
    any " <- caller") and, of that frame, its end (file and line)."""
    if len(key) <= limit:
        return key
    first, sep, _ = key.partition(SITE_SEPARATOR)
    if sep and len(first) + len(SITE_SEPARATOR) + 3 <= limit:
        return first + SITE_SEPARATOR + "..."
    return truncate(first, limit)


def label_of(kind: str, key: str) -> str:
    """The label value for a key of this kind, within `MAX_LABEL_LENGTH`."""
    return truncate_site(key) if kind == "site" else truncate(key)


def _by_label(kind: str, entries: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Top-K entries by label; keys that shorten to the same label are added up, so no two
    series of one metric ever share their labels."""
    out: dict[str, float] = {}
    for key, value in entries:
        label = label_of(kind, key)
        out[label] = out.get(label, 0.0) + value
    return out


def exposed_series_bound(config: Config) -> int:
    """The most series one scrape can expose with this config (histogram buckets included).

    Fixed metrics, plus `max_suspect_series` x 6 suspect series and `top_k` x 2 census series;
    the probe and phase label sets are fixed by the code.
    """
    fixed = 140  # info, per-kind, per-probe and per-phase series, histogram buckets and scalars
    return fixed + 6 * config.max_suspect_series + 2 * config.top_k


def exposed_bytes_bound(config: Config) -> int:
    """The most bytes leakwatch's own metrics take in one text-format scrape with this config.

    A series line is at most about 330 bytes (the longest name, a 120-character key, the id and
    a value); 16 KiB covers the HELP and TYPE lines.
    """
    return 400 * exposed_series_bound(config) + 16 * 1024


class LeakwatchCollector:
    """prometheus_client collector over a `ReportSource` (or a callable that returns one, or None).

    Register it in any registry: ``registry.register(LeakwatchCollector(watcher))``.
    With no source (the callable returns None) it yields nothing.
    """

    def __init__(self, source: ReportSource | Callable[[], ReportSource | None]) -> None:
        self._source: Callable[[], ReportSource | None]
        if isinstance(source, ReportSource):
            fixed = source
            self._source = lambda: fixed
        else:
            self._source = source

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples, so registering never runs a collection."""
        for spec in METRICS:
            yield _family(spec)

    def collect(self) -> Iterator[Metric]:
        source = self._source()
        if source is None:
            return
        config = source.config
        live = workers_of(source)
        if live is not None:
            # A pre-fork master: each live worker's report, its series labelled by its slot.
            families = {spec.name: _family(spec, WORKER_LABELS) for spec in METRICS}
            families["leakwatch_workers"].add_metric([], len(live))  # type: ignore[attr-defined]
            for w in live:
                _add_report(families, w.report, config, (str(w.slot),))
            parent = parent_of_workers(source, live)
            rss = _resident_bytes(parent) if parent is not None else None
            if rss is not None:
                families["leakwatch_process_resident_bytes"].add_metric([MASTER_WORKER], rss)  # type: ignore[attr-defined]
            _add_eta(families, [w.report for w in live])
        else:
            families = {spec.name: _family(spec) for spec in METRICS if spec.name not in MASTER_ONLY}
            report = source.report()
            _add_report(families, report, config, ())
            _add_eta(families, [report])
        yield from families.values()


def _resident_bytes(pid: int) -> float | None:
    """The RSS of a process, read at scrape time (None when it cannot be read)."""
    try:
        return float(psutil.Process(pid).memory_info().rss)
    except (psutil.Error, OSError):
        return None


def _add_report(families: dict[str, Metric], report: Report, config: Config, worker: tuple[str, ...]) -> None:
    """Add one report's samples; `worker` is () or the worker label's value."""

    def add(name: str, labels: Sequence[str], value: float) -> None:
        families[name].add_metric([*worker, *labels], value)  # type: ignore[attr-defined]

    from leakwatch._version import __version__

    families["leakwatch_info"].add_metric(list(worker), {"version": __version__, "tracemalloc": config.tracemalloc})  # type: ignore[attr-defined]
    _add_suspects(add, report, config.max_suspect_series)
    for kind, count in _count_by_kind(report.candidates).items():
        add("leakwatch_candidates", [kind], count)
    for label, value in _by_label("type", report.top.get("type", ())).items():
        add("leakwatch_census_objects", [label], value)
    for label, value in _by_label("site", report.top.get("site", ())).items():
        add("leakwatch_site_bytes", [label], value)
    if report.samples:
        add("leakwatch_census_types", [], report.types)
        add("leakwatch_last_sample_timestamp_seconds", [], report.time)
    process = report.process
    if "py_blocks" in process:
        add("leakwatch_python_allocated_blocks", [], process["py_blocks"])
    if "rss" in process:
        add("leakwatch_process_resident_bytes", [], process["rss"])
    if "uss" in process:
        add("leakwatch_process_uss_bytes", [], process["uss"])
    if report.memory_limit > 0:
        add("leakwatch_memory_limit_bytes", [], report.memory_limit)
    add("leakwatch_tracing_active", [], 1.0 if report.tracing in ("window", "external") else 0.0)
    add("leakwatch_tracemalloc_overhead_bytes", [], process.get("trace_overhead", 0.0))
    _add_costs(add, families["leakwatch_sample_duration_seconds"], report, worker)
    _add_budget(add, report.budget, config)
    add("leakwatch_own_memory_bytes", [], report.history_bytes)
    add("leakwatch_history_series", [], report.series)


def _add_budget(add: Callable[[str, Sequence[str], float], None], budget: Budget, config: Config) -> None:
    """The budgets, what is spent of them, and how far the governor stretched the pace."""
    add("leakwatch_cpu_budget_ratio", [], config.cpu_budget)
    add("leakwatch_cpu_spend_ratio", [], budget.cpu_spend)
    add("leakwatch_core_share_ratio", [], budget.core_share)
    add("leakwatch_interval_seconds", [], budget.interval or config.interval)
    add("leakwatch_window_seconds", [], budget.window or config.window)
    add("leakwatch_trace_budget_ratio", [], config.trace_budget)
    add("leakwatch_trace_spend_ratio", [], budget.trace_spend)
    if budget.trace_slowdown > 0:
        add("leakwatch_trace_slowdown_ratio", [], budget.trace_slowdown)
    add("leakwatch_trace_windows_total", [], budget.windows)
    add("leakwatch_trace_seconds_total", [], budget.traced_seconds)
    add("leakwatch_trace_windows_deferred_total", [], budget.windows_deferred)


def memory_limit_eta(reports: Sequence[Report]) -> float | None:
    """Seconds until the processes' RSS together reaches the memory limit at their summed
    growth; None without a limit, or when memory is not growing."""
    limit = max((r.memory_limit for r in reports), default=0.0)
    growth = sum(r.process.get("rss_growth", 0.0) for r in reports)
    if limit <= 0 or growth <= 0:
        return None
    return max(0.0, (limit - sum(r.process.get("rss", 0.0) for r in reports)) / growth)


def _add_eta(families: dict[str, Metric], reports: Sequence[Report]) -> None:
    eta = memory_limit_eta(reports)
    if eta is not None:
        families["leakwatch_memory_limit_eta_seconds"].add_metric([], eta)  # type: ignore[attr-defined]


def _family(spec: MetricSpec, worker: tuple[str, ...] = ()) -> Metric:
    labels = [*worker, *spec.labels] if spec.name not in UNLABELLED else list(spec.labels)
    if spec.type == "gauge":
        return GaugeMetricFamily(spec.name, spec.help, labels=labels)
    if spec.type == "counter":
        return CounterMetricFamily(spec.name.removesuffix("_total"), spec.help, labels=labels)
    if spec.type == "histogram":
        return HistogramMetricFamily(spec.name, spec.help, labels=labels)
    return InfoMetricFamily(spec.name.removesuffix("_info"), spec.help, labels=list(worker))


def _count_by_kind(series: Sequence[SeriesKey]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for kind, _ in series:
        if kind in counts:
            counts[kind] += 1
    return counts


def _add_suspects(add: Callable[[str, Sequence[str], float], None], report: Report, cap: int) -> None:
    for kind, count in _count_by_kind([s.series for s in report.suspects]).items():
        add("leakwatch_suspects", [kind], count)
    chosen = exported_suspects(report.suspects, cap)
    add("leakwatch_suspects_omitted", [], len(report.suspects) - len(chosen))
    leaks = leak_ids(report.suspects)
    for s in chosen:
        labels = [s.kind, label_of(s.kind, s.key), s.id, leaks[s.id]]
        unit = "objects" if s.unit == "objects" else "bytes"
        add("leakwatch_suspect_confidence_ratio", labels, s.confidence)
        add(f"leakwatch_suspect_{unit}", labels, s.current)
        add(f"leakwatch_suspect_growth_{unit}_per_second", labels, s.growth_per_second)
        add("leakwatch_suspect_since_timestamp_seconds", labels, s.since)
        if s.retained is not None:
            add("leakwatch_suspect_retained_bytes", labels, s.retained.bytes)
            add("leakwatch_suspect_retained_error_bytes", labels, s.retained.error_bytes)


def exported_suspects(suspects: Sequence[Suspect], cap: int) -> list[Suspect]:
    """The suspects that get labelled series: kinds take turns, fastest-growing first within a kind."""
    by_kind: dict[str, list[Suspect]] = {}
    for s in suspects:
        by_kind.setdefault(s.kind, []).append(s)
    queues = [sorted(group, key=lambda s: -s.growth_per_second) for group in by_kind.values()]
    chosen: list[Suspect] = []
    depth = 0
    while len(chosen) < cap and any(depth < len(q) for q in queues):
        chosen.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return chosen[:cap]


def _add_costs(
    add: Callable[[str, Sequence[str], float], None], histogram: Metric, report: Report, worker: tuple[str, ...] = ()
) -> None:
    costs = report.costs
    add("leakwatch_ticks_total", [], report.samples)
    add("leakwatch_postmortems_total", [], report.postmortems)
    for probe, runs in sorted(costs.runs.items()):
        add("leakwatch_samples_total", [probe], runs)
    for probe in sorted({*costs.runs, *report.errors, "watcher"}):
        add("leakwatch_errors_total", [probe], report.errors.get(probe, 0))
    for phase, h in sorted(costs.phases.items()):
        histogram.add_metric([*worker, phase], h.cumulative(), h.total)  # type: ignore[attr-defined]
    add("leakwatch_cpu_seconds_total", [], costs.cpu_seconds)
