"""The probes on the real interpreter: counts, own objects, references, tracing windows."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tracemalloc
import weakref

import pytest

from leakwatch.probes import census
from leakwatch.probes.census import CensusProbe, type_key
from leakwatch.probes.process import ProcessProbe, cgroup_memory_limit, run_and_wait_seconds
from leakwatch.probes.sites import MAX_ATTRIBUTED_TYPES, SiteProbe, is_library_file, user_line


class Widget:
    pass


class Slotted:
    __slots__ = ("payload",)

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def test_type_keys_are_module_qualname_and_builtins_bare():
    assert type_key(dict) == "dict"
    assert type_key(Widget) == f"{__name__}.Widget"
    assert type_key(weakref.ref) == "weakref.ReferenceType"
    assert type_key(tracemalloc.Snapshot) == "tracemalloc.Snapshot"


# The C tally is built wherever a compiler is (setup.py); without one the census runs in Python.
needs_c_tally = pytest.mark.skipif(
    census._count_types is None and shutil.which("cc") is None, reason="no C compiler: the C tally is not built"
)
TALLIES = [pytest.param(True, marks=needs_c_tally, id="C"), pytest.param(False, id="Python")]


@needs_c_tally
def test_the_c_tally_is_built_where_a_compiler_is():
    assert census._count_types is not None, "leakwatch/probes/_census.c was not built: pip install -e . again"


@needs_c_tally
def test_the_c_tally_counts_by_type_and_restores_the_collector():
    objects = [1, "a", [], {}, [], Widget(), Widget(), Widget(), (1,)] + [Slotted() for _ in range(3000)]
    assert census._count_types(lambda: objects) == {int: 1, str: 1, list: 2, dict: 1, Widget: 3, tuple: 1, Slotted: 3000}
    assert census._count_types(list) == {}

    class Hashed(type):  # a metaclass whose hash is Python code, run as the dict is built
        def __hash__(cls) -> int:
            return 7

    class Odd(metaclass=Hashed):
        pass

    assert census._count_types(lambda: [Odd(), Odd()]) == {Odd: 2}
    assert gc.isenabled()
    gc.disable()
    try:
        census._count_types(lambda: objects)
        assert not gc.isenabled()  # left as the application had it
    finally:
        gc.enable()


@needs_c_tally
def test_the_c_tally_rejects_what_is_not_a_list_and_passes_errors_on():
    with pytest.raises(TypeError, match="must return a list, not tuple"):
        census._count_types(lambda: (1, 2))
    with pytest.raises(ZeroDivisionError):
        census._count_types(lambda: 1 / 0)
    assert gc.isenabled()


@pytest.mark.parametrize("accelerated", TALLIES)
def test_census_counts_live_instances(accelerated):
    probe = CensusProbe(slice_size=1000, accelerated=accelerated)  # small slices: the tally must add up across them
    before = probe.read().get(f"{__name__}.Widget", 0)
    widgets = [Widget() for _ in range(5000)]
    after = probe.read()[f"{__name__}.Widget"]
    assert after - before == 5000
    del widgets


def test_census_subtracts_what_leakwatch_owns():
    probe = CensusProbe()
    plain = probe.read()["function"]
    assert probe.read(own={"function": 10})["function"] == plain - 10


@pytest.mark.parametrize("accelerated", TALLIES)
def test_census_leaves_out_pympler_which_leakwatch_runs_to_size_suspects(accelerated):
    from pympler.asizeof import Asizer

    sizer = Asizer()
    sizer.asizeof([object(), {"a": 1}, Slotted()])  # fills pympler's cache of type definitions
    counts = CensusProbe(accelerated=accelerated).read()
    assert not [t for t in counts if t.startswith("pympler.")], sorted(counts)[:20]
    del sizer


@pytest.mark.parametrize("accelerated", TALLIES)
def test_census_keeps_nothing_alive_and_adds_no_referrers(accelerated):
    probe = CensusProbe(accelerated=accelerated)
    target = Widget()
    ref = weakref.ref(target)
    referrers_before = len(gc.get_referrers(target))
    seen: list[int] = []
    assert probe.read()[f"{__name__}.Widget"] >= 1
    probe.read(visit=lambda objs, types: seen.append(len(objs)))
    assert seen and seen[0] > 1000
    assert len(gc.get_referrers(target)) == referrers_before
    del target
    assert ref() is None


def test_census_does_not_force_a_collection():
    collections = gc.get_stats()[2]["collections"]
    CensusProbe().read()
    assert gc.get_stats()[2]["collections"] == collections


def test_process_probe_reads_memory():
    values = ProcessProbe(uss=True).read()
    assert values["rss"] > 1024**2
    assert 0 < values["uss"] <= values["rss"]
    assert values["py_blocks"] == pytest.approx(sys.getallocatedblocks(), rel=0.1)


@pytest.fixture
def probe():
    if tracemalloc.is_tracing():
        pytest.skip("something else is tracing")
    p = SiteProbe(frames=1)
    yield p
    p.stop_window()


def test_tracing_window_sees_only_what_was_allocated_since_it_opened(probe):
    old = [bytearray(10_000) for _ in range(50)]
    probe.start_window(0.0)
    assert probe.active and tracemalloc.is_tracing()
    new = [bytearray(10_000) for _ in range(100)]  # ALLOCATION-LINE
    sizes, blocks = probe.read()
    line = next(i for i, text in enumerate(open(__file__), 1) if "ALLOCATION-LINE" in text and "next(" not in text)
    key = f"{__file__}:{line}"
    assert 100 * 10_000 <= sizes[key] < 110 * 10_000
    assert blocks[key] >= 100
    assert probe.overhead()["trace_overhead"] > 0
    probe.stop_window()
    assert not tracemalloc.is_tracing()
    del old, new


def test_window_leaves_tracing_started_by_the_application_alone(probe):
    tracemalloc.start()
    try:
        assert probe.external
        probe.start_window(0.0)
        probe.stop_window()
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_own_frames_are_not_reported(probe):
    probe.start_window(0.0)
    probe.read()
    sizes, _ = probe.read()
    assert not [k for k in sizes if "/leakwatch/probes/" in k or k.endswith("tracemalloc.py")]


def test_attribution_names_the_allocating_line_of_a_type(probe):
    probe.start_window(0.0)
    made = [Slotted() for _ in range(200)]  # SLOTTED-LINE
    found = {}
    CensusProbe().read(visit=lambda objs, types: found.update(probe.attribute(objs, types, [f"{__name__}.Slotted"])))
    line = next(i for i, text in enumerate(open(__file__), 1) if "SLOTTED-LINE" in text and "next(" not in text)
    assert found[f"{__name__}.Slotted"][0] == f"{__file__}:{line}"
    del made


def test_library_files_are_the_standard_librarys_and_installed_packages():
    import json

    import yaml

    assert is_library_file(json.__file__) and is_library_file(yaml.__file__)
    assert is_library_file("<frozen importlib._bootstrap>")
    assert not is_library_file(__file__)


def test_the_users_line_is_the_nearest_caller_outside_libraries_and_leakwatch():
    import json

    import leakwatch.watcher as own

    frames = [
        tracemalloc.Frame((__file__, 10)),  # the application's handler (oldest)
        tracemalloc.Frame((__file__, 20)),  # the application's helper that calls the library
        tracemalloc.Frame((own.__file__, 30)),  # leakwatch never counts as the application
        tracemalloc.Frame((json.__file__, 40)),  # the library's allocating line (newest)
    ]
    assert user_line(frames) == f"{__file__}:20"
    assert user_line(frames[:3]) == "", "an allocating line of the application's own needs no caller"
    assert user_line(frames[2:]) == "", "no application frame within reach"


def test_a_deep_window_keeps_site_keys_and_notes_the_callers_of_library_lines(probe):
    import json

    probe.deep = True
    probe.start_window(0.0)
    assert tracemalloc.get_traceback_limit() > 1
    made = [json.loads('{"a": [1, 2, 3], "b": {"c": "d"}}') for _ in range(300)]  # JSON-CALLER
    sizes, _ = probe.read()
    line = next(i for i, text in enumerate(open(__file__), 1) if "JSON-CALLER" in text and "next(" not in text)
    library_keys = [k for k in sizes if k.startswith(os.path.dirname(json.__file__))]
    assert library_keys and all(" <- " not in k for k in sizes), "keys name one frame, as trace_frames says"
    assert any(probe.user_lines.get(k) == f"{__file__}:{line}" for k in library_keys), probe.user_lines
    probe.stop_window()
    assert not tracemalloc.is_tracing()
    del made


def test_attribution_never_names_leakwatchs_own_lines(probe):
    from leakwatch.refgraph.instances import spread

    gc.collect()
    gc.disable()  # the gc list in allocation order: leakwatch's lists are the first the scan meets
    try:
        probe.start_window(0.0)
        ours = [spread([1, 2, 3], 2) for _ in range(300)]  # lists leakwatch's own code allocates
        theirs = [[i] for i in range(50)]  # THEIR-LIST
        found = {}
        CensusProbe().read(visit=lambda objs, types: found.update(probe.attribute(objs, types, ["list"])))
    finally:
        gc.enable()
    line = next(i for i, text in enumerate(open(__file__), 1) if "THEIR-LIST" in text and "next(" not in text)
    assert found["list"] and not [s for s in found["list"] if "/leakwatch/" in s], found
    assert f"{__file__}:{line}" in found["list"]
    del ours, theirs


def test_attribution_takes_turns_when_many_types_grow(probe):
    kinds = [type(f"Many{i}", (), {"__slots__": ("x",)}) for i in range(3 * MAX_ATTRIBUTED_TYPES)]
    probe.start_window(0.0)
    made = [k() for k in kinds for _ in range(4)]
    wanted = [f"{__name__}.Many{i}" for i in range(len(kinds))]
    turns: list[dict] = []
    for _ in range(3):
        CensusProbe().read(visit=lambda objs, types: turns.append(probe.attribute(objs, types, wanted)))
    seen: set[str] = set()
    for found in turns:
        assert len(found) <= MAX_ATTRIBUTED_TYPES
        seen |= set(found)
    assert seen == set(wanted)  # three turns cover all 48 types
    del made


def test_a_scrape_does_not_become_an_allocation_site(probe):
    # A scrape's freed dicts go on CPython's free lists and are handed to the application's
    # next dicts with prometheus_client's line still on them; those lines are not reported.
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    registry = CollectorRegistry()
    counter = Counter("requests", "Requests", ["path"], registry=registry)
    probe.start_window(0.0)
    kept = []
    for i in range(300):
        counter.labels(path=f"/p{i}").inc()  # the application's own metrics: a real leak if unbounded
        generate_latest(registry)
        kept.append({"i": i})
    sizes, _ = probe.read()
    assert not [k for k in sizes if "metrics_core.py" in k or "exposition.py" in k]
    assert [k for k in sizes if "prometheus_client" in k and "metrics.py" in k]
    del kept


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_is_the_tightest_up_the_tree(tmp_path):
    write(tmp_path / "proc", "0::/kubepods/pod1/app\n")
    write(tmp_path / "cg" / "kubepods" / "pod1" / "app" / "memory.max", "max\n")
    write(tmp_path / "cg" / "kubepods" / "pod1" / "memory.max", "536870912\n")
    write(tmp_path / "cg" / "kubepods" / "memory.max", "8589934592\n")
    assert cgroup_memory_limit(str(tmp_path / "cg"), str(tmp_path / "proc")) == 512 * 1024**2


def test_cgroup_v1_unlimited_reads_as_none_and_a_limit_as_bytes(tmp_path):
    write(tmp_path / "proc", "4:memory:/docker/abc\n1:cpu:/\n")
    write(tmp_path / "cg" / "memory" / "docker" / "abc" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert cgroup_memory_limit(str(tmp_path / "cg"), str(tmp_path / "proc")) is None
    write(tmp_path / "cg" / "memory" / "docker" / "abc" / "memory.limit_in_bytes", "268435456\n")
    assert cgroup_memory_limit(str(tmp_path / "cg"), str(tmp_path / "proc")) == 256 * 1024**2


def test_no_cgroup_files_means_no_limit(tmp_path):
    assert cgroup_memory_limit(str(tmp_path / "none"), str(tmp_path / "missing")) is None


def test_scheduler_statistics_add_up_every_thread(tmp_path):
    for tid, line in (("100", "2000000000 500000000 40\n"), ("101", "1000000000 1500000000 9\n"), ("102", "garbled\n")):
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "schedstat").write_text(line)
    (tmp_path / "103").mkdir()  # a thread that ended between the listing and the read

    assert run_and_wait_seconds(str(tmp_path)) == pytest.approx((3.0, 2.0))
    assert run_and_wait_seconds(str(tmp_path / "missing")) is None


CONTENDED = """
import os, sys, time
sys.path.insert(0, {root!r})
from leakwatch.probes.process import run_and_wait_seconds
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})  # one core this process may use
spinner = os.fork()
if spinner == 0:  # a busy neighbour on the same core
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        pass
    os._exit(0)
before = run_and_wait_seconds()
end = time.monotonic() + 1.0
while time.monotonic() < end:
    pass
after = run_and_wait_seconds()
os.waitpid(spinner, 0)
print((after[0] - before[0]) / ((after[0] - before[0]) + (after[1] - before[1])))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduler statistics are Linux's")
def test_a_process_sharing_its_core_with_a_busy_one_waits_about_as_long_as_it_runs():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", CONTENDED.format(root=root)], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stderr
    share = float(done.stdout)
    # About half each; a third busy process on that core (a noisy machine) would make it a third.
    assert 0.25 < share < 0.7, "two busy processes on one core get about half of it each"


def test_one_definition_of_leakwatchs_own_code_covers_every_module_but_the_demo():
    import pkgutil

    import leakwatch
    from leakwatch.own import is_own_file, is_own_module

    names = [m.name for m in pkgutil.walk_packages(leakwatch.__path__, "leakwatch.")]
    assert "leakwatch.governor" in names and "leakwatch.exporters.prometheus" in names
    assert all(is_own_module(n) for n in names if n != "leakwatch.demo")
    assert not is_own_module("leakwatch.demo") and not is_own_module("leakwatchers") and not is_own_module(None)
    root = os.path.dirname(os.path.abspath(leakwatch.__file__))
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                assert is_own_file(path) == (f != "demo.py" or dirpath != root), path
    assert not is_own_file(os.path.abspath(__file__))
