"""Referrer graphs: who holds a leaked object, as the shortest named path from a root.

One module per job; each imports only modules listed before it:

- `model`: what a graph finds (`Graph`, `Path`, `Step`) and `to_dict`;
- `targets`: what a graph request names (a suspect id, a type, a site) and `resolve_target`;
- `redact`: what of the application's data a graph may show (dict keys, scrubbed reprs);
- `edges`: how one object holds another, and the edge's name;
- `instances`: the live objects a target names, and the few sampled from them;
- `roots`: where a path starts (modules, classes, thread frames, tasks), and this package's own frames;
- `frozen`: holders in the frozen heap a pre-fork master's `gc.freeze()` hides from referrer searches;
- `search`: the breadth-first search from the samples back to roots, `find_paths`;
- `retained`: the memory a suspect's objects hold, from pympler's deep sizes of a few of them;
- `tasks`: asyncio tasks nothing can wake, `stranded_tasks`;
- `rendering`: JSON, DOT and SVG, `render` (a module named `render` would be hidden by the
  function this package re-exports under that name).

Nothing here calls `repr()` or `str()` on an application object unless reprs are asked for.
This module only re-exports; nothing runs at import.
"""

from __future__ import annotations

from leakwatch.refgraph.model import Graph, Path, Step
from leakwatch.refgraph.redact import safe_key, scrubbed_repr
from leakwatch.refgraph.rendering import FORMATS, check_format, render, to_dot
from leakwatch.refgraph.search import DEFAULT_MAX_DEPTH, DEFAULT_SAMPLES, find_paths
from leakwatch.refgraph.targets import ALLOWED_TARGETS, SUSPECT_ID, Target, resolve_target
from leakwatch.refgraph.tasks import stranded_tasks

__all__ = [
    "ALLOWED_TARGETS",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_SAMPLES",
    "FORMATS",
    "SUSPECT_ID",
    "Graph",
    "Path",
    "Step",
    "Target",
    "check_format",
    "find_paths",
    "render",
    "resolve_target",
    "safe_key",
    "scrubbed_repr",
    "stranded_tasks",
    "to_dot",
]
