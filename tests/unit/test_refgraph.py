"""Retention paths on real structures that really hold objects: each test builds one and asks
who holds its instances."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import shutil
import sys
import threading
import types
import uuid
from collections import deque

import pytest

import leakwatch
from leakwatch.model import Suspect
from leakwatch.refgraph import find_paths, safe_key, to_dot

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
    for target, message in [
        (site, "graphs follow objects"),
        ("0123456789ab", "no current suspect has id"),
        ("not a type!", "neither a suspect id nor a type name"),
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
