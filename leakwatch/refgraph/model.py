"""What a graph finds: `Graph`, its `Path`s and their `Step`s, frozen, with `to_dict`.

Paths that share a shape share a signature (a stable hash), so the same leak has the same id in
every worker and after a restart.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

FROZEN_NOTE = "(through the frozen heap: the master built the holder before it forked; this worker added the objects)"


@dataclasses.dataclass(frozen=True)
class Step:
    """One object on a path: its type, and its size when it is a builtin container."""

    type: str
    size: int | None = None
    repr: str | None = None  # only when reprs were asked for: scrubbed and truncated


@dataclasses.dataclass(frozen=True)
class Path:
    """The shortest chain that holds sampled instances, from a root to the instance.

    `steps[0]` is the root object, `steps[-1]` the instance; `edges[i]` names how `steps[i]`
    holds `steps[i + 1]`. `root` says what kind of root it is ("module", "class", "thread",
    "task" or "outside", held outside Python). `accumulation` indexes the container nearest the
    instance (where leaked instances pile up), or is None. `count` is how many sampled instances
    share the path's signature. `frozen` says a holder on the path is in the frozen heap: the
    pre-fork master built it before it forked (`gc.freeze()`), and this process added to it.
    """

    root: str
    root_name: str
    steps: tuple[Step, ...]
    edges: tuple[str, ...]
    accumulation: int | None
    count: int = 1
    frozen: bool = False

    @property
    def signature(self) -> str:
        """A stable id of the path's shape: the same leak gets it in any process."""
        shape = [self.root, self.root_name, *(s.type for s in self.steps), *(_shape_of(e) for e in self.edges)]
        return hashlib.sha1("\0".join(shape).encode("utf-8", "surrogatepass")).hexdigest()[:12]

    def describe(self) -> str:
        parts = [f"{self.root} {self.root_name}" if self.root_name else self.root]
        for i, edge in enumerate(self.edges):
            step = self.steps[i + 1]
            size = f" (len {step.size})" if step.size is not None else ""
            mark = " <- accumulates here" if i + 1 == self.accumulation else ""
            parts.append(f"{edge} -> {step.type}{size}{mark}")
        if self.frozen:
            parts.append(FROZEN_NOTE)
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "root": self.root,
            "root_name": self.root_name,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "edges": list(self.edges),
            "accumulation": self.accumulation,
            "count": self.count,
            "frozen": self.frozen,
            "text": self.describe(),
        }


@dataclasses.dataclass(frozen=True)
class Graph:
    """The retention paths found for one type or site."""

    target: str
    instances: int
    sampled: int
    paths: tuple[Path, ...]
    passes: int
    seconds: float
    complete: bool  # False when the depth or time budget cut the search short
    released: int = 0  # samples the application let go of while the search ran
    kind: str = "type"  # what `target` names: "type" or "site"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "instances": self.instances,
            "sampled": self.sampled,
            "paths": [p.to_dict() for p in self.paths],
            "passes": self.passes,
            "seconds": self.seconds,
            "complete": self.complete,
            "released": self.released,
        }


def _shape_of(edge: str) -> str:
    """An edge with its variable part (which key, which index) left out."""
    if edge.startswith("["):
        return "[]"
    return edge
