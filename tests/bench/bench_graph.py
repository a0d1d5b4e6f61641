"""What a referrer graph costs, side by side with objgraph, on the same heap, in one run.

    python tests/bench/bench_graph.py [--objects 1000000] [--repeat 3] [--json PATH]

Builds a heap of about `--objects` gc-tracked objects (instances with a `__dict__`, dicts,
lists, tuples) plus a leak: `Session` instances filed in a dict in a module, two levels below
it. Then, for one leaked instance on that heap, measures:

1. `leakwatch.graph("...Session")`: paths for 8 sampled instances, JSON;
2. `objgraph.find_backref_chain(obj, objgraph.is_proper_module)`: one chain for one instance;
3. `objgraph.show_backrefs([obj], max_depth=4, output=...)`: its back-reference drawing
   (DOT only, so Graphviz's time is left out).

Then 2,000 `bytes` payloads (which the collector does not track) leak into a module list,
allocated while tracemalloc traces, and it measures `leakwatch.graph("bytes")` and the graph
of their allocation site, next to `objgraph.find_backref_chain` for one payload.

It prints wall times (median of `--repeat`) and ratios, the number of heap walks leakwatch
made, and whether each tool's output contains the secret stored in every leaked instance.
Exits 0 whatever the figures: a measurement, not a test.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import time
import tracemalloc
import types
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import objgraph  # noqa: E402

import leakwatch  # noqa: E402

SECRET = "sk_live_benchSECRET0123456789"


class Filler:
    def __init__(self, i: int) -> None:
        self.i = i
        self.tags = [i]


def build_heap(objects: int) -> tuple[list[Any], types.ModuleType]:
    """About `objects` gc-tracked objects, and a module `benchapp` leaking Sessions."""
    filler: list[Any] = []
    while len(filler) * 3 < objects * 2:  # each pair adds three tracked objects: instance, dict, list
        f = Filler(len(filler))
        filler.append(f)
        filler.append({"k": f})
    app = types.ModuleType("benchapp")
    sys.modules["benchapp"] = app
    session = type("Session", (), {"__module__": "benchapp"})
    app.Session = session
    app.state = {"registry": {"sessions": {}}}
    sessions = app.state["registry"]["sessions"]
    for i in range(2000):
        s = session()
        s.token = SECRET
        sessions[f"user{i}"] = s
    return filler, app


def make_payloads(n: int) -> list[bytes]:
    return [os.urandom(64) for _ in range(n)]


PAYLOAD_SITE = f"{make_payloads.__code__.co_filename}:{make_payloads.__code__.co_firstlineno + 1}"


def timed(call: Any, repeat: int) -> tuple[float, Any]:
    runs, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), result


def measure(objects: int, repeat: int) -> dict[str, Any]:
    filler, app = build_heap(objects)
    gc.collect()
    heap = len(gc.get_objects())
    # leakwatch first: the closures below hold one instance, and would be a shorter path to it.
    lw_seconds, graph = timed(lambda: leakwatch.graph("benchapp.Session"), repeat)
    held = [next(iter(app.state["registry"]["sessions"].values()))]
    chain_seconds, chain = timed(lambda: objgraph.find_backref_chain(held[0], objgraph.is_proper_module), repeat)
    dot = io.StringIO()
    show_seconds, _ = timed(lambda: objgraph.show_backrefs(held[:1], max_depth=4, output=dot), repeat)
    objgraph_dot = dot.getvalue()
    first_path = graph["paths"][0]["text"] if graph["paths"] else None
    result = {
        "heap_objects": heap,
        "leakwatch": {"seconds": lw_seconds, "passes": graph["passes"], "path": first_path},
        "objgraph_find_backref_chain": {"seconds": chain_seconds, "chain_length": len(chain)},
        "objgraph_show_backrefs": {"seconds": show_seconds},
        "ratios": {
            "find_backref_chain_over_leakwatch": chain_seconds / lw_seconds,
            "show_backrefs_over_leakwatch": show_seconds / lw_seconds,
        },
        "secret_in_output": {"leakwatch": SECRET in json.dumps(graph), "objgraph_show_backrefs": SECRET in objgraph_dot},
    }
    held.clear()
    del chain
    result["untracked"] = measure_untracked(app, repeat)
    del filler
    del sys.modules["benchapp"]
    return result


def measure_untracked(app: types.ModuleType, repeat: int) -> dict[str, Any]:
    """Graphs of 2,000 leaked bytes payloads: by type, by allocation site, and objgraph's chain."""
    tracemalloc.start(1)
    try:
        app.payloads = make_payloads(2000)
        by_type_seconds, by_type = timed(lambda: leakwatch.graph("bytes"), repeat)
        site_seconds, site = timed(lambda: leakwatch.graph(PAYLOAD_SITE), repeat)
    finally:
        tracemalloc.stop()
    held = [app.payloads[0]]
    chain_seconds, chain = timed(lambda: objgraph.find_backref_chain(held[0], objgraph.is_proper_module), repeat)
    held.clear()
    del app.payloads
    return {
        "bytes": {"seconds": by_type_seconds, "passes": by_type["passes"], "path": by_type["paths"][0]["text"]},
        "site": {"seconds": site_seconds, "passes": site["passes"], "path": site["paths"][0]["text"]},
        "objgraph_find_backref_chain": {"seconds": chain_seconds, "chain_length": len(chain)},
    }


def render(r: dict[str, Any]) -> str:
    lw, chain, show = r["leakwatch"], r["objgraph_find_backref_chain"], r["objgraph_show_backrefs"]
    u = r["untracked"]
    return "\n".join(
        [
            f"heap: {r['heap_objects']:,} gc-tracked objects; 2,000 leaked Sessions, three containers below a module",
            f"leakwatch.graph (8 instances)        {lw['seconds'] * 1000:9.1f} ms  {lw['passes']} heap walks",
            f"  {lw['path']}",
            f"objgraph.find_backref_chain (1)      {chain['seconds'] * 1000:9.1f} ms  "
            f"({r['ratios']['find_backref_chain_over_leakwatch']:.1f}x leakwatch)",
            f"objgraph.show_backrefs depth 4 (1)   {show['seconds'] * 1000:9.1f} ms  "
            f"({r['ratios']['show_backrefs_over_leakwatch']:.1f}x leakwatch)",
            f"secret in output: leakwatch {r['secret_in_output']['leakwatch']}, "
            f"objgraph.show_backrefs {r['secret_in_output']['objgraph_show_backrefs']}",
            "2,000 leaked bytes payloads in a module list (not gc-tracked), allocated while tracing:",
            f"leakwatch.graph('bytes') (8)         {u['bytes']['seconds'] * 1000:9.1f} ms  {u['bytes']['passes']} heap walks",
            f"  {u['bytes']['path']}",
            f"leakwatch.graph(site) (8)            {u['site']['seconds'] * 1000:9.1f} ms  {u['site']['passes']} heap walks",
            f"objgraph.find_backref_chain (1)      {u['objgraph_find_backref_chain']['seconds'] * 1000:9.1f} ms",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    result = measure(args.objects, args.repeat)
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
