"""Retention paths on real structures that really hold objects: each test builds one and asks
who holds its instances."""

from __future__ import annotations

import ast
import asyncio
import ctypes
import gc
import importlib
import json
import logging
import os
import pkgutil
import shutil
import subprocess
import sys
import threading
import tracemalloc
import types
import uuid
from collections import deque
from pathlib import Path

import pytest

import leakwatch
from leakwatch import refgraph
from leakwatch.model import Suspect
from leakwatch.refgraph import find_paths, safe_key, scrubbed_repr, stranded_tasks, to_dot
from leakwatch.refgraph.roots import is_search_frame
from leakwatch.refgraph.search import Search

SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


def make_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module


@pytest.fixture
def module(request):
    name = f"lwapp_{request.node.name[:20]}"
    yield make_module(name)
    del sys.modules[name]


def leaky_class(module: types.ModuleType, name: str = "Session") -> type:
    cls = type(name, (), {"__module__": module.__name__})
    setattr(module, name, cls)
    return cls


def test_module_dict_registry_names_the_attribute_and_the_key_shape(module):
    Session = leaky_class(module)
    module._sessions = {f"user{i}": Session() for i in range(300)}
    graph = find_paths(f"{module.__name__}.Session")
    assert graph.complete and graph.instances == 300
    (path,) = graph.paths
    assert path.count == 8
    assert (path.root, path.root_name) == ("module", module.__name__)
    assert path.edges[0] == "._sessions" and path.edges[1].startswith("['user")
    assert path.steps[path.accumulation].type == "dict" and path.steps[path.accumulation].size == 300


def test_class_attribute_list(module):
    Session = leaky_class(module)
    module.Registry = type("Registry", (), {"__module__": module.__name__, "items": []})
    module.Registry.items.extend(Session() for _ in range(40))
    (path,) = find_paths(f"{module.__name__}.Session").paths
    assert (path.root, path.root_name) == ("class", f"{module.__name__}.Registry")
    assert path.edges[0] == ".items" and path.edges[1].startswith("[")
    assert path.steps[path.accumulation].type == "list"


def test_closure_cell_is_named_by_its_variable(module):
    Item = leaky_class(module, "Item")

    def make_handler():
        seen = deque()

        def handle():
            seen.append(Item())

        return handle

    module.handler = make_handler()
    for _ in range(50):
        module.handler()
    (path,) = find_paths(f"{module.__name__}.Item").paths
    assert path.edges[:2] == (".handler", "closure seen")
    assert path.steps[path.accumulation].type == "collections.deque"


def test_a_running_threads_local_is_a_root():
    cls = type("Job", (), {"__module__": "lwjobs"})
    ready, done = threading.Event(), threading.Event()

    def worker():
        backlog = [cls() for _ in range(30)]
        ready.set()
        done.wait(30)
        del backlog

    thread = threading.Thread(target=worker, name="lw-worker")
    thread.start()
    try:
        ready.wait(10)
        (path,) = find_paths("lwjobs.Job").paths
        assert path.root == "thread" and "lw-worker" in path.root_name and "worker" in path.root_name
        assert path.edges[0] == "local backlog" and path.steps[0].type == "frame"
    finally:
        done.set()
        thread.join(10)


def test_an_asyncio_task_is_a_root():
    cls = type("Chunk", (), {"__module__": "lwtasks"})
    ready = threading.Event()
    result: dict = {}

    async def consumer(stop: asyncio.Event):
        buffered = [cls() for _ in range(20)]
        ready.set()
        await stop.wait()
        return len(buffered)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(consumer(stop), name="consumer")
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: (ready.wait(10), result.update(g=find_paths("lwtasks.Chunk")))
        )
        stop.set()
        await task

    asyncio.run(main())
    roots = {p.root for p in result["g"].paths}
    assert roots & {"task", "thread"}, [p.describe() for p in result["g"].paths]
    assert any("buffered" in edge for p in result["g"].paths for edge in p.edges)


def test_an_object_only_c_code_holds_is_held_outside_python():
    cls = type("Native", (), {"__module__": "lwnative"})
    obj = cls()
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))  # a leaked reference count, as a C extension would
    address = id(obj)
    del obj
    graph = find_paths("lwnative.Native")
    (path,) = graph.paths
    assert path.root == "outside" and path.edges == ()
    leaked = ctypes.cast(address, ctypes.py_object).value
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(leaked))


def test_a_holder_in_the_frozen_heap_is_found_by_walking_from_the_modules():
    # As under a pre-fork master with freeze on: the list was built before gc.freeze(), the
    # objects after, so no referrer search sees the list.
    module = make_module("lwfrozen")
    module.cache = {"sessions": []}
    cls = type("Kept", (), {"__module__": "lwfrozen"})
    gc.freeze()
    try:
        module.cache["sessions"].extend(cls() for _ in range(50))
        assert gc.get_referrers(module.cache["sessions"][0]) == [], "the list is frozen"
        graph = find_paths("lwfrozen.Kept", samples=4)
    finally:
        gc.unfreeze()
        del sys.modules["lwfrozen"]
    assert graph.sampled == 4 and graph.complete
    (path,) = graph.paths
    assert (path.root, path.root_name, path.frozen, path.count) == ("module", "lwfrozen", True, 4)
    assert path.edges[:2] == (".cache", "['sessions']") and path.steps[path.accumulation or 0].type == "list"
    assert "frozen heap" in path.describe() and path.to_dict()["frozen"] is True
    assert "through the frozen heap" in to_dot(graph)


def test_logging_getlogger_names_the_loggerdict():
    for _ in range(30):
        logging.getLogger(f"lwjob.{uuid.uuid4().hex}")
    graph = find_paths("logging.Logger")
    texts = [p.describe() for p in graph.paths]
    assert any(".loggerDict" in t for t in texts), texts
    assert not any(uuid_hex in t for t in texts for uuid_hex in ("lwjob.",)), texts  # random keys stay hidden


def test_secrets_appear_in_no_output(module):
    Session = leaky_class(module)
    module._by_token = {}
    for i in range(20):
        s = Session()
        s.token = f"{SECRET}{i}"
        module._by_token[f"{SECRET}{i}"] = s
    graph = find_paths(f"{module.__name__}.Session")
    out = json.dumps(graph.to_dict()) + to_dot(graph)
    assert SECRET[:12] not in out
    assert "<str len" in out  # the key is there, as its type and length


def test_same_shape_gives_the_same_signature_across_instances(module):
    Session = leaky_class(module)
    module._sessions = {f"user{i}": Session() for i in range(100)}
    first = find_paths(f"{module.__name__}.Session").paths[0].signature
    module._sessions.update({f"late{i}": Session() for i in range(100)})
    second = find_paths(f"{module.__name__}.Session").paths[0].signature
    assert first == second


def test_search_is_a_few_heap_walks_not_one_per_object(module):
    Session = leaky_class(module)
    module._sessions = {i: [Session()] for i in range(2000)}
    graph = find_paths(f"{module.__name__}.Session", samples=5)
    assert graph.complete and sum(p.count for p in graph.paths) == 5
    assert graph.passes <= 6  # the objects walk, then one per level of the path


def test_unknown_type_gives_an_empty_graph():
    graph = find_paths("no.such.Type")
    assert graph.instances == 0 and graph.paths == () and graph.complete


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("user0", "'user0'"),
        ("_sessions", "'_sessions'"),
        (SECRET, f"<str len {len(SECRET)}>"),
        ("a3f9c2d8e1b04f6a", "<str len 16>"),
        ("bob@example.com", "<str len 15>"),
        (42, "42"),
        (4111111111111111, "<int>"),
        (("a", 1), "<tuple>"),
    ],
)
def test_keys_are_shown_only_when_they_cannot_be_secrets(key, shown):
    assert safe_key(key) == shown


def test_graph_api_gives_json_dot_and_svg_without_secrets(module):
    Session = leaky_class(module)
    module._sessions = {}
    for i in range(50):
        s = Session()
        s.token = SECRET
        module._sessions[f"{SECRET}{i}"] = s
    name = f"{module.__name__}.Session"
    as_json = leakwatch.graph(name)
    assert as_json["target"] == name and as_json["paths"][0]["root"] == "module"
    dot = leakwatch.graph(name, "dot")
    assert dot.startswith("digraph leakwatch {") and "._sessions" in dot
    assert shutil.which("dot"), "Graphviz is missing: apt-get install graphviz (.ci/run does)"
    svg = leakwatch.graph(name, "svg")
    assert svg.startswith(b"<?xml") and b"<svg" in svg and b"_sessions" in svg
    for out in (json.dumps(as_json), dot, svg.decode()):
        assert SECRET[:12] not in out


def test_graph_of_a_suspect_and_its_bad_targets(module):
    Session = leaky_class(module)
    module.kept = [Session() for _ in range(10)]
    name = f"{module.__name__}.Session"
    suspect = Suspect(kind="type", key=name, unit="objects", current=10, growth_per_second=1, since=0, confidence=1)
    assert leakwatch.graph(suspect)["paths"][0]["text"].startswith(f"module {module.__name__} .kept")
    site = Suspect(kind="site", key="app.py:3", unit="bytes", current=1, growth_per_second=1, since=0, confidence=1)
    rss = Suspect(kind="process", key="rss", unit="bytes", current=1, growth_per_second=1, since=0, confidence=1)
    assert not tracemalloc.is_tracing()
    for target, message in [
        (site, "tracemalloc is not tracing"),
        ("app/views.py:42", "tracemalloc is not tracing"),
        (rss, "no Python object holds"),
        ("0123456789ab", "no current suspect has id"),
        ("not a type!", "names no graph target"),
        ("", "empty"),
        (42, "not int"),
    ]:
        with pytest.raises(leakwatch.LeakwatchError, match=message):
            leakwatch.graph(target)
    with pytest.raises(leakwatch.LeakwatchError, match="allowed: json, dot, svg"):
        leakwatch.graph(name, "png")


def test_svg_without_graphviz_names_the_debian_package(module, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(leakwatch.MissingTool, match="apt-get install graphviz"):
        leakwatch.graph("builtins.object", "svg")


def test_holders_mutated_while_the_search_names_them(module):
    # The application keeps running while a graph is drawn: a thread grows and trims the very
    # dict and list that hold the instances (logging.getLogger's loggerDict in the field).
    Session = leaky_class(module)
    module._sessions = {i: Session() for i in range(2000)}
    module._queue = [Session() for _ in range(2000)]
    stop = threading.Event()

    def churn():
        i = 2000
        while not stop.is_set():
            module._sessions[i] = Session()
            module._sessions.pop(i - 1000, None)
            module._queue.append(Session())
            del module._queue[0]
            i += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        for _ in range(10):
            graph = find_paths(f"{module.__name__}.Session", samples=16)
            held = sum(p.count for p in graph.paths if p.edges[:1] in (("._sessions",), ("._queue",)))
            # Instances the churn dropped while the search ran are counted as released; the one it
            # has just made and not yet stored is on its thread's stack, out of sight.
            assert held >= 1 and graph.sampled - held <= 2, [p.describe() for p in graph.paths]
            assert graph.sampled + graph.released == 16
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(interval)


def test_a_holder_let_go_of_during_the_search_leaves_the_other_path(module, monkeypatch):
    # The instance is held twice: by the module's list, and by a request's list that the
    # application drops between two heap walks. The dropped one is no path any more; the
    # search goes on along the other instead of calling the instance released.
    Session = leaky_class(module)
    session = Session()
    module._sessions = [session]
    request = types.SimpleNamespace(held=[session])
    del session
    level = Search._level
    walks = []

    def application_runs_between_walks(self, *args):
        level(self, *args)
        walks.append(1)
        request.held = None

    monkeypatch.setattr(Search, "_level", application_runs_between_walks)
    graph = find_paths(f"{module.__name__}.Session")

    assert len(walks) >= 2 and graph.released == 0
    assert [(p.root, p.edges[:1]) for p in graph.paths] == [("module", ("._sessions",))]


def test_the_caller_of_a_search_holds_nothing_and_its_caller_does(module):
    # The search's own frames (find_paths, Search.run, what they call: every module of
    # leakwatch.refgraph) and the frame that called it (the graph request) are not holders;
    # the request's caller is the application, and its locals are.
    Session = leaky_class(module)

    def ask():
        request = Session()  # noqa: F841 - the graph request's own local
        return find_paths(f"{module.__name__}.Session")

    def handler():
        session = Session()  # noqa: F841 - held by the application's frame
        return ask()

    graph = handler()
    held = [(p.root_name, p.edges[:1]) for p in graph.paths if p.root == "thread"]
    assert held == [(f"{threading.current_thread().name} in handler", ("local session",))]
    assert not any(" in ask" in p.describe() or "refgraph" in p.describe() for p in graph.paths)


def _frame_here() -> types.FrameType:
    import sys  # run with another module's globals, which need not hold sys

    return sys._getframe()


def test_own_frames_are_those_of_every_module_of_the_package():
    own = [info.name for info in pkgutil.iter_modules(refgraph.__path__)]
    assert {"search", "roots", "tasks", "instances", "edges"} <= set(own)
    for name in ["", *own]:
        module = importlib.import_module(f"{refgraph.__name__}.{name}".rstrip("."))
        assert is_search_frame(types.FunctionType(_frame_here.__code__, vars(module))()), module.__name__
    assert not is_search_frame(_frame_here())
    # A name alone is not enough: the globals must be the module's own.
    assert not is_search_frame(types.FunctionType(_frame_here.__code__, {"__name__": "leakwatch.refgraph.search"})())


def test_untracked_bytes_are_found_among_what_tracked_objects_hold(module):
    # bytes are not gc-tracked: no gc.get_objects() lists them. Some sit in a list directly,
    # some in (key, payload) tuples the collector has untracked.
    module._payloads = [bytes(100) + i.to_bytes(4, "little") for i in range(3000)]
    module._pairs = [(f"k{i}", bytes(200) + i.to_bytes(4, "little")) for i in range(3000)]
    gc.collect()
    assert not gc.is_tracked(module._pairs[0])
    graph = find_paths("bytes", samples=32)
    # A handful of heap walks, not one per object: 8 for this module's bytes, and a few more
    # when the suite's earlier tests left bytes elsewhere that samples land on.
    assert graph.instances >= 6000 and graph.passes <= 12
    texts = [p.describe() for p in graph.paths]
    direct = next(p for p in graph.paths if p.edges[0] == "._payloads")
    paired = next(p for p in graph.paths if p.edges[0] == "._pairs")
    assert direct.count + paired.count >= 24, texts
    assert [s.type for s in paired.steps] == ["module", "list", "tuple", "bytes"] and paired.edges[2] == "[1]"
    # The list accumulates; the fixed-size tuple does not.
    assert paired.steps[paired.accumulation].type == "list" and paired.steps[paired.accumulation].size == 3000


def blobs(n: int) -> list[bytes]:
    return [os.urandom(64) for _ in range(n)]


def sessions(cls: type, n: int) -> dict[int, object]:
    return {i: cls() for i in range(n)}


def line_of(fn) -> str:
    """The site its body's one line allocates at, as site suspects name it."""
    return f"{fn.__code__.co_filename}:{fn.__code__.co_firstlineno + 1}"


def test_a_site_names_the_objects_allocated_there(module):
    Session = leaky_class(module)
    tracemalloc.start(1)
    try:
        module._blobs = blobs(500)
        module._kept = sessions(Session, 500)
        module._other = [os.urandom(64) for _ in range(500)]
        graph = find_paths(line_of(blobs), kind="site")
        assert graph.kind == "site" and graph.instances >= 500
        assert [p.edges[0] for p in graph.paths] == ["._blobs"], [p.describe() for p in graph.paths]
        graph = leakwatch.graph(line_of(sessions))
        edges = {p["edges"][0] for p in graph["paths"]}
        # 3.11's get_object_traceback misses instances whose dict is inline (a CPython bug); the
        # dict that holds them was allocated on that line too.
        assert edges and edges <= {"._kept"}, graph["paths"]
    finally:
        tracemalloc.stop()
    with pytest.raises(leakwatch.LeakwatchError, match="tracemalloc is not tracing"):
        find_paths(line_of(blobs), kind="site")


def test_reprs_only_when_asked_and_then_scrubbed(module):
    class Session:
        def __init__(self, i):
            self.user = f"user{i}@example.com"
            self.token = SECRET

        def __repr__(self):
            return f"Session(user={self.user!r}, token={self.token!r}, api_key={SECRET}, auth='Bearer {SECRET}')"

    Session.__module__, Session.__qualname__ = module.__name__, "Session"
    module._sessions = [Session(i) for i in range(20)]
    quiet = json.dumps(find_paths(f"{module.__name__}.Session").to_dict())
    assert '"repr": null' in quiet and "Session(" not in quiet
    shown = find_paths(f"{module.__name__}.Session", reprs=True)
    steps = shown.paths[0].steps
    assert steps[-1].repr.startswith("Session(user=") and len(steps[-1].repr) <= 120
    assert steps[0].repr.startswith("<module") and steps[1].repr.startswith("[Session(")
    out = json.dumps(shown.to_dict()) + to_dot(shown)
    assert SECRET not in out and "example.com" not in out and "<redacted>" in out


def test_a_failing_repr_is_named_not_raised():
    class Broken:
        def __repr__(self):
            raise ValueError("no")

    assert scrubbed_repr(Broken()).startswith("<Broken instance at ")
    assert len(scrubbed_repr("a" * 500)) <= 62 and len(scrubbed_repr(list(range(10**6)))) <= 120
    assert scrubbed_repr({"password": "hunter2", "n": 1}) == "{'n': 1, 'password': '<redacted>'}"


def test_walking_referents_leaves_the_heap_intact_after_asyncio():
    # CPython 3.12.0-3.12.5 hand out _asyncio's freed FutureIter objects from gc.get_referents
    # on that module; dropping them corrupts the gc list and the next heap walk spins forever
    # (gh-122695). Run in a child, so a regression fails here instead of hanging the suite.
    program = """
import asyncio, gc, sys
from leakwatch.refgraph import find_paths

async def main():
    for _ in range(5):
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(1)
        await fut  # iterating a future leaves a FutureIter on the free list

asyncio.run(main())
gc.collect()
find_paths("bytes", samples=4)  # walks every object's referents
find_paths("_asyncio.Future", samples=4)  # a search that may reach the _asyncio module
gc.get_referrers(object())
print("intact")
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "intact", result.stderr[-2000:]


def run_tasks_then(check, *coroutines_of):
    """Start 30 tasks of each coroutine function, kept in a set as asyncio's docs advise, and run
    `check` on another thread (as the watcher's would) while the loop keeps running."""
    kept: set = set()
    result: dict = {}

    async def main():
        for make in coroutines_of:
            for i in range(30):
                kept.add(asyncio.create_task(make(i)))
        await asyncio.sleep(0.05)
        thread = threading.Thread(target=lambda: result.update(value=check()))
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        for task in kept:
            task.cancel()
        await asyncio.gather(*kept, return_exceptions=True)

    asyncio.run(main())
    return result["value"]


REPLIES: dict = {}


async def never_answered(i):
    await asyncio.get_running_loop().create_future()  # nobody else ever sees this future


async def waits_on_a_private_event(i):
    event = asyncio.Event()  # only this coroutine holds the event, so nothing can set it
    await event.wait()


async def sleeps(i):
    await asyncio.sleep(3600)  # the loop's timer heap holds the wake-up


async def awaits_a_filed_reply(i):
    REPLIES[i] = asyncio.get_running_loop().create_future()  # a reader could answer it
    await REPLIES[i]


@pytest.mark.parametrize(
    ("coroutine", "stranded"),
    [(never_answered, True), (waits_on_a_private_event, True), (sleeps, False), (awaits_a_filed_reply, False)],
)
def test_stranded_tasks_are_those_nothing_outside_can_wake(coroutine, stranded):
    found, sampled = run_tasks_then(stranded_tasks, coroutine)
    # The sample may take the test's own main task, which sleeps (wakeable) or, done sleeping
    # by the time it is judged, is left out.
    assert sampled >= 7
    assert found >= sampled - 1 if stranded else found == 0
    REPLIES.clear()


async def ticks(i):
    while True:
        await asyncio.sleep(0.0003)  # woken thousands of times a second: some wake-up is always under way


def test_tasks_the_loop_keeps_waking_are_never_stranded():
    # A wake-up in progress holds the task's future where only a C local sees it for a moment.
    # A search of 30 such tasks catches one so about one time in five, in a small program on an
    # idle machine (a slower search finds them all woken and decides nothing about them); a
    # second look must clear them all. Tasks asleep for an hour beside them are always decided,
    # and never stranded either.
    program = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_refgraph import run_tasks_then, sleeps, ticks
from leakwatch.refgraph import stranded_tasks
print([run_tasks_then(lambda: stranded_tasks(samples=1000, budget_seconds=10), ticks, sleeps) for _ in range(25)])
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    verdicts = ast.literal_eval(result.stdout.strip() or "None")
    assert verdicts is not None, result.stderr[-2000:]
    assert [found for found, _ in verdicts] == [0] * 25
    assert all(sampled >= 30 for _, sampled in verdicts)  # each search decided on the sleepers


def test_stranded_tasks_beside_busy_ones_are_all_found():
    # A busy machine slows the searches; the default 2 s budget would leave some undecided.
    found, sampled = run_tasks_then(lambda: stranded_tasks(samples=1000, budget_seconds=10), ticks, ticks, never_answered)
    assert found == 30 and sampled >= 30


def test_tasks_being_cancelled_are_neither_stranded_nor_a_backlog():
    # asyncio.run ends by cancelling every pending task: each future is cancelled at once, and
    # its task wakes a round of the loop later. Meanwhile the loop holds the future for that
    # wake-up, so a check at that moment must leave the tasks out, not call them a backlog.
    result = {}

    async def main():
        tasks = [asyncio.create_task(never_answered(i)) for i in range(30)]
        await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        result["value"] = stranded_tasks(samples=1000)  # before the loop runs again
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert result["value"] == (0, 0)


def test_no_event_loop_no_stranded_tasks():
    assert stranded_tasks() == (0, 0)
