"""Copy-on-write: how much private memory leakwatch adds to a worker forked from a preloaded master.

    python tests/bench/bench_cow.py [--objects 1000000] [--ticks 3] [--json PATH]

A census walks `gc.get_objects()`, and reading an object's gc header writes its reference
count: in a worker forked from a master that preloaded the app, that copies every shared page
the heap sits on. This builds a master with `--objects` gc-tracked objects, forks one worker
per variant, and measures the worker's USS (unique set size, psutil) just after the fork and
after `--ticks` censuses:

1. no watcher: the worker only waits as long (the floor: what the worker dirties anyway);
2. leakwatch as a pre-fork master's worker with `freeze` on (the default: `gc.freeze()` before
   the fork, so censuses skip the preloaded heap);
3. the same with `freeze=False`.

Each variant runs in a fresh process, so one's freeze does not carry into the next. It prints
the USS each worker added and writes JSON. Exits 0 whatever the figures: a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

VARIANTS = ("no_watcher", "freeze", "no_freeze")
MIB = 1024 * 1024


class Preloaded:
    def __init__(self, i: int) -> None:
        self.i = i


def build_heap(objects: int) -> list[Any]:
    """About `objects` gc-tracked objects: instances and the small lists that hold them."""
    return [[Preloaded(i)] for i in range(objects // 2)]


def run_variant(variant: str, objects: int, ticks: int) -> dict[str, Any]:
    """In this process: build the master's heap, fork one worker, measure it; return the figures."""
    import psutil

    from leakwatch.watcher import Watcher

    heap = build_heap(objects)
    watcher = None
    if variant != "no_watcher":
        watcher = Watcher(prefork="master", freeze=variant == "freeze", interval=0.2, tracemalloc="off", warmup=0)
        watcher.start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        me = psutil.Process()
        before = me.memory_full_info().uss
        deadline = time.monotonic() + 60
        if watcher is not None:
            while watcher.report().samples < ticks and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            time.sleep(0.2 * (ticks + 1))
        after = me.memory_full_info().uss
        samples = watcher.report().samples if watcher is not None else 0
        os.write(write, json.dumps({"before": before, "after": after, "samples": samples}).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        figures = json.loads(f.read())
    os.waitpid(pid, 0)
    figures.update(variant=variant, heap_objects=objects, added=figures["after"] - figures["before"])
    del heap
    return figures


def measure(objects: int, ticks: int) -> dict[str, Any]:
    results = {}
    for variant in VARIANTS:
        out = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--objects", str(objects), "--ticks", str(ticks)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        results[variant] = json.loads(out.stdout)
    floor = results["no_watcher"]["added"]
    return {
        "heap_objects": objects,
        "ticks": ticks,
        "variants": results,
        "leakwatch_added_bytes": {v: results[v]["added"] - floor for v in ("freeze", "no_freeze")},
    }


def render(r: dict[str, Any]) -> str:
    lines = [f"worker forked from a master holding {r['heap_objects']:,} gc-tracked objects; {r['ticks']} censuses"]
    for variant in VARIANTS:
        v = r["variants"][variant]
        lines.append(f"{variant:<12} USS +{v['added'] / MIB:7.1f} MiB  ({v['samples']} samples)")
    for variant, added in r["leakwatch_added_bytes"].items():
        lines.append(f"leakwatch adds, {variant:<10} {added / MIB:7.1f} MiB over the no-watcher worker")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one measurement, in a fresh process
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.objects, args.ticks)))
        return 0
    result = measure(args.objects, args.ticks)
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
