"""How much memory a suspect's objects hold: the deep sizes of a few of them (pympler's
`asizeof`), scaled to all of them.

A count says how many objects leak, not how much memory: 60,000 small objects may hold 3 MB
or, each with a payload, 3 GB. `measure` samples up to `samples` of a type's live instances
(or of the objects allocated at a site, while tracemalloc traces), spread over the gc list as
a graph's are, and sizes them one after the other with one `Asizer`, which counts an object
reachable from several samples once:

- the first sample's size holds what the samples share (a payload every object points to, the
  interned names of their attributes) besides its own part; each later sample adds only its
  own part, so their mean is the part each object holds alone (`per_object`), and what the
  first adds above that mean is shared, counted once (`shared`);
- what the program holds anyway is never counted: the values of every module's globals are
  excluded before sizing (a configuration dict a leaked object points to is not the leak's),
  and pympler leaves out classes, functions and code;
- the estimate for all `count` objects is `shared + per_object * count`, with a 95% bound from
  the spread of the later samples' sizes (and the finite-population correction).

`asizeof` runs Python code over what the samples hold, on the caller's thread (the watcher's):
finding the objects takes at most half the budget, and sizing stops at the deadline between two
samples.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

from leakwatch.refgraph.edges import instance_dict
from leakwatch.refgraph.instances import Instances, spread

DEFAULT_SAMPLES = 32
# z for a two-sided 95% bound on the mean of the per-object sizes.
Z95 = 1.96


@dataclasses.dataclass(frozen=True)
class Sizing:
    """The deep sizes of `samples` of the `count` objects a target names (see the module docstring)."""

    per_object: float  # bytes each object holds on its own (the mean over the samples after the first)
    shared: float  # bytes the sampled objects share, counted once
    error_per_object: float  # 95% half-width of `per_object`
    count: int
    samples: int
    seconds: float

    @property
    def total(self) -> float:
        return self.shared + self.per_object * self.count


def measure(kind: str, key: str, samples: int = DEFAULT_SAMPLES, budget_seconds: float = 1.0) -> Sizing | None:
    """The deep sizes of up to `samples` objects of the type `key` (`kind="type"`) or allocated
    at the site `key` (`kind="site"`, while tracemalloc traces; `LeakwatchError` otherwise).
    None when there are none, or no sample could be sized within `budget_seconds`."""
    from pympler.asizeof import Asizer

    started = time.perf_counter()
    deadline = started + budget_seconds
    found = Instances(kind, key, started + budget_seconds / 2)
    count = found.count
    chosen = spread(found.matches, samples)
    found.matches = []
    found.via = {}
    if not chosen:
        return None
    asizer = Asizer()  # type: ignore[no-untyped-call]  # pympler has no annotations
    asizer.exclude_objs(*_globals())  # type: ignore[no-untyped-call]
    sizes: list[float] = []
    for obj in chosen:
        if sizes and time.perf_counter() > deadline:
            break
        sizes.append(float(asizer.asizeof(obj)))  # type: ignore[no-untyped-call]
    chosen = []
    return _sizing(sizes, count, time.perf_counter() - started)


def _globals() -> list[object]:
    """The values of every module's globals: what the program holds whatever leaks."""
    out: list[object] = []
    for module in list(sys.modules.values()):
        namespace = instance_dict(module)
        if isinstance(namespace, dict):
            out.extend(dict.copy(namespace).values())
    return out


def _sizing(sizes: list[float], count: int, seconds: float) -> Sizing:
    """The estimate from the samples' successive sizes (the first holds what they share)."""
    n = len(sizes)
    if n == 1:
        # One sample cannot tell its own part from a shared one: all of it is its own, and the
        # bound is as large as the estimate.
        return Sizing(sizes[0], 0.0, sizes[0], count, 1, seconds)
    later = sizes[1:]
    mean = sum(later) / len(later)
    shared = max(0.0, sizes[0] - mean)
    variance = sum((x - mean) ** 2 for x in later) / (len(later) - 1) if len(later) > 1 else mean**2
    fpc = math.sqrt(max(0.0, 1.0 - n / count)) if count > 0 else 0.0
    error = Z95 * math.sqrt(variance / len(later)) * fpc
    return Sizing(mean, shared, error, count, n, seconds)
