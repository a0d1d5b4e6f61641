"""What one leakwatch sample costs, side by side with the floor, objgraph and pympler, in one run.

    python tests/bench/bench_sample.py [--sizes 100000,1000000] [--repeat 5] [--json PATH]
                                       [--self-samples 10000] [--traced-samples 400] [--skip-pympler]

For each heap size N it builds a realistic mix of gc-tracked objects (instances with a
``__dict__``, dicts, lists, tuples) until ``len(gc.get_objects())`` is about N, then measures:

1. leakwatch: ``Watcher(census=True, process=True, tracemalloc="auto", log_suspects=False)``
   ``.sample_now()`` at defaults; one watcher per size, one warm-up tick, then `--repeat` ticks;
2. the floor: ``gc.get_objects()`` plus the census's sliced ``Counter`` tally, list dropped after;
3. ``objgraph.typestats()``;
4. pympler: ``tracker.SummaryTracker()``, then ``diff()`` twice; the second is timed, once per
   size (seconds at 1M objects);
5. for each of these, for ``gc.get_objects()`` alone (the reference), and for every object's
   type read in the same C call that makes the object list (the floor of a census that never
   lets another thread run while that list exists, see `types_in_one_call`), the longest
   stall another thread sees: a ticker thread sleeps 1 ms in a loop and records its longest
   gap between wakeups while the call runs.

Every timed call runs with the collector paused after a collection, as `timeit` does: a full
collection of the big heap costs as much as a census, and lands in whichever call trips it.

Wall times come from runs without the ticker; stalls from separate runs with it (pympler,
run once, gives both from the same run). Then, on the smallest heap, it ticks one watcher
`--self-samples` times and reports leakwatch's own memory: RSS, pymalloc blocks, history bytes,
series; and the traced-memory growth of a fresh watcher over `--traced-samples` ticks under
tracemalloc, from once its history is full to the end. Tracing makes a tick about 8 times
slower (the census's Counter allocates an int per object counted, and tracemalloc traces each),
so that run is shorter.

Prints a table, writes the same figures as JSON, and exits 0 whatever they are: this is a
measurement, not a test (tests/bench/test_bench_smoke.py keeps it from rotting).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, islice
from operator import methodcaller
from typing import Any, TextIO

import psutil

import leakwatch

DEFAULT_SIZES = (100_000, 1_000_000, 3_000_000)
DEFAULT_STRINGS = 2_000_000
STRINGS_PER_LIST = 1_000
DEFAULT_REPEAT = 5
DEFAULT_SELF_SAMPLES = 10_000
DEFAULT_JSON = "bench-results.json"

# Same slice as leakwatch/probes/census.py; copied, not imported, so the floor stays the floor
# if the census changes.
FLOOR_SLICE = 32_768
TICK_SECONDS = 0.001
# tracked objects one heap record adds: Account, its roles list, a dict, Event, Point, a tuple.
OBJECTS_PER_RECORD = 6
BUILD_TOLERANCE = 0.005
# Self-memory: figures after this many ticks and at the end; a shorter run under tracemalloc.
HISTORY_MARK = 1_000
DEFAULT_TRACED_SAMPLES = 400
TRACED_CHECKPOINTS = 8
# The time targets (leakwatch/floor, typestats/leakwatch) are judged on heaps of at least this
# many objects: on smaller ones a tick's fixed costs (psutil, the detector) are a larger part.
TARGET_SIZE = 1_000_000

MIB = 1024 * 1024


# --- the heap -----------------------------------------------------------------------------------


class Account:
    def __init__(self, ident: int, name: str) -> None:
        self.ident = ident
        self.name = name
        self.roles = ["user"]
        self.active = True


class Event:
    def __init__(self, account: Account, payload: dict[str, Any]) -> None:
        self.account = account
        self.payload = payload
        self.seen = False


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y


def make_record(i: int) -> tuple[Event, Point]:
    """Six gc-tracked objects shaped like an application's: instances, a list, a dict, a tuple."""
    account = Account(i, f"user{i}")
    payload = {"id": i, "roles": account.roles, "kind": "login"}  # holds a list, so tracked
    return (Event(account, payload), Point(i * 0.5, -i * 0.5))


def build_heap(target: int) -> list[tuple[Event, Point]]:
    """Records until ``len(gc.get_objects())`` is within 0.5% of `target` (or already above it)."""
    heap: list[tuple[Event, Point]] = []
    gc.collect()
    was_enabled = gc.isenabled()
    # Collections while a million objects pile up cost seconds and measure nothing.
    gc.disable()
    try:
        while True:
            missing = target - len(gc.get_objects())
            if missing <= target * BUILD_TOLERANCE:
                break
            start = len(heap)
            heap.extend(make_record(i) for i in range(start, start + max(1, missing // OBJECTS_PER_RECORD)))
    finally:
        if was_enabled:
            gc.enable()
    gc.collect()
    return heap


def build_string_heap(strings: int) -> list[list[object]]:
    """A heap dominated by str and bytes: `strings` of them (half each, 24-48 bytes), in lists
    of 1,000. The collector tracks only the lists, so a census walks few objects while the
    memory is mostly payload; tools that walk every object (pympler) pay for all of it."""
    gc.collect()
    heap: list[list[object]] = []
    for start in range(0, strings, STRINGS_PER_LIST):
        heap.append([f"session-{i:012d}" if i % 2 else bytes(48) for i in range(start, min(strings, start + STRINGS_PER_LIST))])
    gc.collect()
    return heap


# --- the calls measured -------------------------------------------------------------------------


def floor_census() -> None:
    """``gc.get_objects()`` plus the census's tally, exactly as leakwatch/probes/census.py slices it."""
    objs = gc.get_objects()
    try:
        counter: Counter[type] = Counter()
        update = counter.update
        it = iter(objs)
        for _ in range(0, len(objs), FLOOR_SLICE):
            update(map(type, islice(it, FLOOR_SLICE)))
    finally:
        del objs


def get_objects_only() -> None:
    objs = gc.get_objects()
    del objs


def types_in_one_call() -> None:
    """Every object's type, read inside the one C call that makes and drops the list of every
    object: the least a census can do that never lets another thread run while that list
    exists (which breaks the other thread's `tuple(...)`, CPython #39117). Its stall is
    `gc.get_objects()`'s plus one more read of every object, the floor of leakwatch's stall."""
    kinds = list(map(type, chain.from_iterable(map(methodcaller("__call__"), (gc.get_objects,)))))
    del kinds


class Ticker:
    """A thread that sleeps 1 ms in a loop; `max_gap` is its longest gap between wakeups.

    Use as a context manager around the call measured: the gap is how long another thread
    waited for the GIL (plus the sleep itself, so about 1.1 ms is the resolution).
    """

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._stop = threading.Event()
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-ticker", daemon=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        self._running.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.perf_counter()
        self._running.set()
        while not self._stop.is_set():
            time.sleep(TICK_SECONDS)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Collect first, then keep the collector off for the call, as `timeit` does: otherwise
    a full collection of the big heap (as long as a census) lands in whichever call happens
    to trip the threshold, whoever allocated what tripped it."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_call(fn: Callable[[], object]) -> float:
    with collector_paused():
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started


def stall_of(fn: Callable[[], object]) -> float:
    with collector_paused(), Ticker() as ticker:
        fn()
    return ticker.max_gap


def measure_side_by_side(calls: dict[str, Callable[[], object]], repeat: int) -> dict[str, dict[str, Any]]:
    """Warm each call up once, then time them round-robin, then measure stalls round-robin.

    Round-robin, so that a slow spell of the machine weighs on every call alike.
    """
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    stalls: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, fn in calls.items():
            times[name].append(time_call(fn))
    for _ in range(repeat):
        for name, fn in calls.items():
            stalls[name].append(stall_of(fn))
    return {name: summarize(times[name], stalls[name]) for name in calls}


def summarize(times: list[float], stalls: list[float]) -> dict[str, Any]:
    return {
        "median_seconds": statistics.median(times),
        "min_seconds": min(times),
        "runs_seconds": times,
        "stall_median_ms": statistics.median(stalls) * 1000,
        "stall_min_ms": min(stalls) * 1000,
        "stall_max_ms": max(stalls) * 1000,
        "stall_runs_ms": [s * 1000 for s in stalls],
        "repeat": len(times),
    }


class LeakwatchTick:
    """`watcher.sample_now()`, keeping the stage durations each report carries."""

    def __init__(self, watcher: leakwatch.Watcher) -> None:
        self.watcher = watcher
        self.durations: list[dict[str, float]] = []

    def __call__(self) -> None:
        self.durations.append(dict(self.watcher.sample_now().durations))

    def stages(self, runs_seconds: list[float]) -> dict[str, float]:
        """Median seconds per stage over the timed runs, and `other`: the tick's wall time not in a stage.

        The timed runs are the ones after the warm-up, in `measure_side_by_side`'s order.
        """
        timed = self.durations[1 : 1 + len(runs_seconds)]
        per_stage: dict[str, list[float]] = {}
        for durations in timed:
            for stage, seconds in durations.items():
                per_stage.setdefault(stage, []).append(seconds)
        medians = {stage: statistics.median(values) for stage, values in per_stage.items()}
        medians["other"] = statistics.median(wall - sum(d.values()) for wall, d in zip(runs_seconds, timed, strict=True))
        return medians


def measure_pympler() -> dict[str, Any]:
    """Construction (first summary), a first diff, and the timed second diff, under the ticker."""
    try:
        from pympler import tracker
    except ImportError:
        return {"skipped": True, "reason": "pympler is not installed (pip install -e '.[bench]')"}
    started = time.perf_counter()
    tr = tracker.SummaryTracker()
    construct = time.perf_counter() - started
    first_diff = time_call(tr.diff)
    with collector_paused(), Ticker() as ticker:
        started = time.perf_counter()
        tr.diff()
        second_diff = time.perf_counter() - started
    del tr
    result = summarize([second_diff], [ticker.max_gap])
    result.update(construct_seconds=construct, first_diff_seconds=first_diff, timed="second diff() call, under the ticker")
    return result


# --- one heap size ------------------------------------------------------------------------------


def ratio(value: float, on_mins: float, target: float, op: str, applies: bool) -> dict[str, Any]:
    """A ratio of medians judged against its target; `on_mins`, the same ratio of minimums, for noisy machines."""
    passed = value <= target if op == "<=" else value >= target
    return {
        "value": value,
        "on_mins": on_mins,
        "target": target,
        "op": op,
        "applies": applies,
        "pass": passed if applies else None,
    }


def bench_size(target: int, repeat: int, skip_pympler: bool, out: TextIO, strings: int = 0) -> tuple[dict[str, Any], list[Any]]:
    """Measure every call on a heap of about `target` objects, or of `strings` str and bytes;
    return the figures and the heap."""
    started = time.perf_counter()
    if strings:
        print(f"building a heap of {strings:,} str and bytes objects ...", file=out, flush=True)
        heap: list[Any] = build_string_heap(strings)
    else:
        print(f"building a heap of about {target:,} gc-tracked objects ...", file=out, flush=True)
        heap = build_heap(target)
    build_seconds = time.perf_counter() - started
    objects = len(gc.get_objects())
    print(f"  {objects:,} objects; measuring ...", file=out, flush=True)

    watcher = leakwatch.Watcher(census=True, process=True, tracemalloc="auto", log_suspects=False)
    tick = LeakwatchTick(watcher)
    calls: dict[str, Callable[[], object]] = {"leakwatch": tick, "floor": floor_census}
    try:
        import objgraph

        calls["objgraph"] = objgraph.typestats
    except ImportError:
        pass
    calls["get_objects"] = get_objects_only
    calls["one_call"] = types_in_one_call
    results: dict[str, Any] = measure_side_by_side(calls, repeat)
    results["leakwatch"]["stages_median_seconds"] = tick.stages(results["leakwatch"]["runs_seconds"])
    results["leakwatch"]["tracing"] = watcher.report().tracing
    results["leakwatch"]["config"] = watcher.config.to_dict()
    if "objgraph" not in results:
        results["objgraph"] = {"skipped": True, "reason": "objgraph is not installed (pip install -e '.[bench]')"}
    del watcher, tick
    gc.collect()
    if skip_pympler:
        results["pympler"] = {"skipped": True, "reason": "--skip-pympler"}
    else:
        results["pympler"] = measure_pympler()
        gc.collect()
    figures = {
        "target": target,
        "kind": "str+bytes" if strings else "records",
        "strings": strings,
        "objects": objects,
        "build_seconds": build_seconds,
        "calls": results,
        "ratios": ratios_of(results, objects),
    }
    return figures, heap


def ratios_of(calls: dict[str, Any], objects: int) -> dict[str, Any]:
    big = objects >= TARGET_SIZE * (1 - BUILD_TOLERANCE)

    def over(top: str, bottom: str, field: str, target: float, op: str, applies: bool) -> dict[str, Any]:
        """`top`'s time (or stall) over `bottom`'s: of medians, and of minimums beside it."""
        median, least = ("median_seconds", "min_seconds") if field == "time" else ("stall_median_ms", "stall_min_ms")
        t, b = calls[top], calls[bottom]
        return ratio(t[median] / b[median], t[least] / b[least], target, op, applies)

    ratios = {
        "leakwatch_over_floor": over("leakwatch", "floor", "time", 1.3, "<=", big),
        "leakwatch_stall_over_get_objects_stall": over("leakwatch", "get_objects", "stall", 1.5, "<=", True),
        "leakwatch_stall_over_one_call_stall": over("leakwatch", "one_call", "stall", 1.5, "<=", True),
    }
    if not calls["objgraph"].get("skipped"):
        ratios["objgraph_over_leakwatch"] = over("objgraph", "leakwatch", "time", 2.0, ">=", big)
    return ratios


# --- leakwatch's own memory ---------------------------------------------------------------------


def new_watcher() -> leakwatch.Watcher:
    """The self-memory watcher: defaults, but tracemalloc="off", so only history and probes count."""
    return leakwatch.Watcher(census=True, process=True, tracemalloc="off", log_suspects=False)


def self_memory(samples: int, traced_samples: int, objects: int, out: TextIO) -> dict[str, Any]:
    """Tick one watcher `samples` times and watch its own memory; then a shorter traced run."""
    print(f"self memory: {samples:,} ticks on the {objects:,}-object heap ...", file=out, flush=True)
    proc = psutil.Process()
    gc.collect()
    rss_before = proc.memory_info().rss
    blocks_before = sys.getallocatedblocks()
    watcher = new_watcher()
    mark = min(HISTORY_MARK, samples)
    at_mark: dict[str, int] = {}
    started = time.perf_counter()
    for i in range(1, samples + 1):
        report = watcher.sample_now()
        if i == mark:
            gc.collect()
            at_mark = {
                "history_bytes": report.history_bytes,
                "series": report.series,
                "rss": proc.memory_info().rss,
                "blocks": sys.getallocatedblocks(),
            }
    seconds = time.perf_counter() - started
    final = watcher.report()
    gc.collect()
    figures: dict[str, Any] = {
        "objects": objects,
        "samples": samples,
        "tracemalloc_option": "off",
        "note": 'the watcher runs with tracemalloc="off", so that only its history and probes count, not a tracing window',
        "seconds": seconds,
        "ms_per_sample": seconds / samples * 1000,
        "mark_samples": mark,
        "rss_before": rss_before,
        "rss_at_mark": at_mark["rss"],
        "rss_after": proc.memory_info().rss,
        "allocated_blocks_before": blocks_before,
        "allocated_blocks_at_mark": at_mark["blocks"],
        "allocated_blocks_after": sys.getallocatedblocks(),
        "history_bytes_at_mark": at_mark["history_bytes"],
        "history_bytes_after": final.history_bytes,
        "series_at_mark": at_mark["series"],
        "series": final.series,
        "errors": dict(final.errors),
    }
    points = watcher.config.history_points
    del watcher, report, final
    traced_samples = min(traced_samples, samples)  # the traced run is the shorter one
    if traced_samples > 0:
        print(f"self memory: {traced_samples:,} ticks under tracemalloc ...", file=out, flush=True)
        figures["traced"] = traced_growth(traced_samples, settle=2 * points)
    return figures


def traced_growth(samples: int, settle: int) -> dict[str, Any]:
    """Traced memory of a fresh watcher, traced from its construction: once its history is full
    (after `settle` ticks, or a quarter of the run if later), at a few checkpoints, and at the end.

    Between checkpoints the figure dips when history folds old points together, so the range
    over the checkpoints says more than the end minus the mark alone. Each is read after a
    collection, so that cyclic garbage not yet collected does not count as held.
    """
    mark = max(samples // 4, min(samples // 2, settle), 1)
    step = max(1, (samples - mark) // TRACED_CHECKPOINTS)
    checkpoints = set(range(mark, samples, step)) | {samples}
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    try:
        started = time.perf_counter()
        watcher = new_watcher()
        current: dict[int, int] = {}
        for i in range(1, samples + 1):
            watcher.sample_now()
            if i in checkpoints:
                gc.collect()
                current[i] = tracemalloc.get_traced_memory()[0]
        peak = tracemalloc.get_traced_memory()[1]
        seconds = time.perf_counter() - started
        held = leakwatch_lines(tracemalloc.take_snapshot())
        del watcher
    finally:
        if started_here:
            tracemalloc.stop()
    current_at_mark, current_after = current[mark], current[samples]
    growth = current_after - current_at_mark
    return {
        "samples": samples,
        "mark_samples": mark,
        "current_at_mark": current_at_mark,
        "current_after": current_after,
        "checkpoints": [{"samples": i, "current": current[i]} for i in sorted(current)],
        "current_min": min(current.values()),
        "current_max": max(current.values()),
        "max_above_mark_bytes": max(current.values()) - current_at_mark,
        "growth_bytes": growth,
        "growth_bytes_per_sample": growth / max(1, samples - mark),
        "peak": peak,
        "seconds": seconds,
        "leakwatch_held_bytes": sum(size for _, size in held),
        "leakwatch_top_lines": [{"line": line, "bytes": size} for line, size in held[:5]],
    }


def leakwatch_lines(snapshot: tracemalloc.Snapshot) -> list[tuple[str, int]]:
    """Live bytes allocated by leakwatch's own code, by line, biggest first."""
    package = os.path.dirname(leakwatch.__file__)
    stats = snapshot.filter_traces([tracemalloc.Filter(True, os.path.join(package, "*"))]).statistics("lineno")
    return [(f"{os.path.relpath(s.traceback[0].filename, package)}:{s.traceback[0].lineno}", s.size) for s in stats]


# --- output -------------------------------------------------------------------------------------


def meta(args: argparse.Namespace) -> dict[str, Any]:
    versions = {}
    for dist in ("leakwatch-agent", "objgraph", "pympler", "psutil"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "switch_interval_ms": sys.getswitchinterval() * 1000,
        "versions": versions,
        "sizes": args.sizes,
        "repeat": args.repeat,
        "self_samples": args.self_samples,
        "traced_samples": args.traced_samples,
        "skip_pympler": args.skip_pympler,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


CALL_LABELS = {
    "leakwatch": "leakwatch sample_now()",
    "floor": "floor: get_objects + tally",
    "objgraph": "objgraph.typestats()",
    "pympler": "pympler tracker.diff() x1",
    "get_objects": "gc.get_objects() alone",
    "one_call": "get_objects + types, 1 C call",
}
RATIO_LABELS = {
    "leakwatch_over_floor": "leakwatch / floor",
    "objgraph_over_leakwatch": "objgraph.typestats / leakwatch",
    "leakwatch_stall_over_get_objects_stall": "leakwatch stall / get_objects stall",
    "leakwatch_stall_over_one_call_stall": "leakwatch stall / 1-C-call stall",
}


def render(results: dict[str, Any]) -> str:
    m = results["meta"]
    lines = [
        f"leakwatch sampling benchmark: Python {m['python']} on {m['platform']}, {m['cpus']} CPUs, "
        f"switch interval {m['switch_interval_ms']:g} ms, repeat {m['repeat']} (+1 warm-up)",
        "wall times without the ticker; stall = longest gap of a 1 ms sleep loop in another thread",
    ]
    for size in results["sizes"]:
        lines += ["", *render_size(size, m["switch_interval_ms"])]
    if results.get("self_memory"):
        lines += ["", *render_self_memory(results["self_memory"])]
    lines += ["", f"total run time {results['total_seconds']:.1f} s"]
    return "\n".join(lines)


def render_size(size: dict[str, Any], switch_interval_ms: float) -> list[str]:
    lines = [
        (
            f"heap of {size['strings']:,} str and bytes: {size['objects']:,} gc-tracked objects"
            if size.get("strings")
            else f"heap {size['target']:,} target: {size['objects']:,} gc-tracked objects"
        )
        + f" (built in {size['build_seconds']:.1f} s)",
        f"  {'call':<28} {'median ms':>10} {'min ms':>10} {'stall med ms':>13} {'stall max ms':>13} {'runs':>5}",
    ]
    for name, label in CALL_LABELS.items():
        c = size["calls"].get(name)
        if c is None:
            continue
        if c.get("skipped"):
            lines.append(f"  {label:<28} skipped: {c['reason']}")
            continue
        lines.append(
            f"  {label:<28} {c['median_seconds'] * 1000:>10.2f} {c['min_seconds'] * 1000:>10.2f}"
            f" {c['stall_median_ms']:>13.2f} {c['stall_max_ms']:>13.2f} {c['repeat']:>5}"
        )
    lw = size["calls"]["leakwatch"]
    stages = ", ".join(f"{k} {v * 1000:.2f}" for k, v in lw["stages_median_seconds"].items())
    lines.append(f"  leakwatch tick stages, median ms: {stages}; tracing {lw['tracing']}")
    pympler = size["calls"].get("pympler", {})
    if not pympler.get("skipped"):
        lines.append(
            f"  pympler: construction {pympler['construct_seconds']:.2f} s, first diff {pympler['first_diff_seconds']:.2f} s, "
            "timed second diff above"
        )
    lines.append(f"  {'ratios':<38} {'medians':>9} {'(mins)':>8}")
    for name, label in RATIO_LABELS.items():
        r = size["ratios"].get(name)
        if r is None:
            continue
        verdict = ("PASS" if r["pass"] else "MISS") if r["applies"] else "(judged from 1M)"
        lines.append(f"    {label:<36} {r['value']:>9.2f} {r['on_mins']:>8.2f}   target {r['op']} {r['target']:g}   {verdict}")
    if size["calls"]["get_objects"]["median_seconds"] * 1000 < switch_interval_ms:
        lines.append(
            f"  note: gc.get_objects() takes less than the {switch_interval_ms:g} ms switch interval here, so the other"
            " thread's wait is set by that interval and the census's tally slices, not by the heap walk"
        )
    return lines


def render_self_memory(s: dict[str, Any]) -> list[str]:
    mark, n = f"{s['mark_samples']:,}", f"{s['samples']:,}"
    blocks_growth = s["allocated_blocks_after"] - s["allocated_blocks_at_mark"]
    lines = [
        f"self memory: {n} sample_now() of one watcher on the {s['objects']:,}-object heap, "
        f'tracemalloc="{s["tracemalloc_option"]}" (history and probes only)',
        f"  time             {s['seconds']:.1f} s ({s['ms_per_sample']:.2f} ms/sample)",
        f"  RSS              before {s['rss_before'] / MIB:.1f} MiB, after {mark} {s['rss_at_mark'] / MIB:.1f} MiB, "
        f"after {n} {s['rss_after'] / MIB:.1f} MiB ({(s['rss_after'] - s['rss_at_mark']) / MIB:+.1f} MiB since {mark})",
        f"  pymalloc blocks  before {s['allocated_blocks_before']:,}, after {mark} {s['allocated_blocks_at_mark']:,}, "
        f"after {n} {s['allocated_blocks_after']:,} ({blocks_growth:+,} since {mark})",
        f"  history_bytes    after {mark}: {s['history_bytes_at_mark']:,}   after {n}: {s['history_bytes_after']:,}",
        f"  series           after {mark}: {s['series_at_mark']}   after {n}: {s['series']}",
    ]
    t = s.get("traced")
    if t:
        lines += [
            f"  traced           fresh watcher, {t['samples']:,} ticks under tracemalloc in {t['seconds']:.1f} s: "
            f"current after {t['mark_samples']:,} {t['current_at_mark']:,} B, after {t['samples']:,} {t['current_after']:,} B",
            f"                   growth {t['growth_bytes']:+,} B ({t['growth_bytes_per_sample']:+.1f} B/tick); "
            f"{len(t['checkpoints'])} checkpoints from {t['mark_samples']:,} on: {t['current_min']:,} .. {t['current_max']:,} B, "
            f"highest {t['max_above_mark_bytes']:+,} B above the mark",
            f"                   held by leakwatch's own lines at the end: {t['leakwatch_held_bytes']:,} B",
        ]
    return lines


# --- command line -------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor > 1 else text
    value = int(float(number) * factor)
    if value <= 0:
        raise ValueError(text)
    return value


def parse_sizes(text: str) -> list[int]:
    try:
        return sorted({parse_size(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 100000,1000000 (or 100k,1M), got {text!r}") from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def publish(table: str, results: dict[str, Any], path: str, out: TextIO) -> None:
    """Print a benchmark's table, write its figures to `path` as JSON, and say where."""
    print(table, file=out)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(f"figures written to {path}", file=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_sample.py",
        description="Time leakwatch's sample against gc.get_objects()+tally, objgraph and pympler, and its own memory.",
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=list(DEFAULT_SIZES), help="heap sizes in gc-tracked objects (default 100k,1M,3M)"
    )
    parser.add_argument(
        "--strings",
        type=lambda t: 0 if t.strip() == "0" else parse_size(t),
        default=DEFAULT_STRINGS,
        help="also a heap of this many str and bytes objects; 0 leaves it out (default 2M)",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=DEFAULT_REPEAT, help="timed runs per call, after one warm-up (default 5)"
    )
    parser.add_argument(
        "--json", default=DEFAULT_JSON, metavar="PATH", help=f"where to write the figures (default {DEFAULT_JSON})"
    )
    parser.add_argument(
        "--self-samples", type=int, default=DEFAULT_SELF_SAMPLES, help="ticks for the self-memory run; 0 skips it (default 10000)"
    )
    parser.add_argument(
        "--traced-samples",
        type=int,
        default=DEFAULT_TRACED_SAMPLES,
        help=f"ticks under tracemalloc (about 8x slower), at most --self-samples; 0 skips (default {DEFAULT_TRACED_SAMPLES})",
    )
    parser.add_argument("--skip-pympler", action="store_true", help="leave pympler out (seconds per call at 1M objects)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmark, print the table to `out` (stdout), write the JSON; always 0."""
    out = out if out is not None else sys.stdout
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": meta(args), "sizes": [], "self_memory": None}
    for i, target in enumerate(args.sizes):
        figures, heap = bench_size(target, args.repeat, args.skip_pympler, out)
        results["sizes"].append(figures)
        if i == 0 and args.self_samples > 0:
            results["self_memory"] = self_memory(args.self_samples, args.traced_samples, figures["objects"], out)
        del heap
        gc.collect()
    if args.strings:
        figures, heap = bench_size(0, args.repeat, args.skip_pympler, out, strings=args.strings)
        results["sizes"].append(figures)
        del heap
        gc.collect()
    results["total_seconds"] = time.perf_counter() - started
    print("", file=out)
    publish(render(results), results, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
