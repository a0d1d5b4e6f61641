"""Snapshots of one process's memory, and what grew between two of them.

A snapshot is a JSON document: the whole census (live objects by type), the live bytes per
allocation site while tracing, process memory, and the suspects with their retained sizes.
`leakwatch.snapshot()` takes one in code, `GET /api/snapshot` and `leakwatch snapshot` over
HTTP; `diff` says what grew from one to the other (a deploy's baseline to now, say), and
`format_diff` prints it for people.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from leakwatch.errors import LeakwatchError
from leakwatch.model import Report, human

FORMAT = 1  # the document's version, in its "leakwatch_snapshot" field
DIFF_ROWS = 20


def make(report: Report, types: Mapping[str, float], pid: int | None = None) -> dict[str, Any]:
    """A snapshot document from a full census (`types`) and the latest report."""
    return {
        "leakwatch_snapshot": FORMAT,
        "time": report.time,
        "pid": os.getpid() if pid is None else pid,
        "types": dict(sorted(types.items(), key=lambda kv: -kv[1])),
        "sites": dict(report.top.get("site", ())),
        "process": dict(report.process),
        "suspects": [s.to_dict() for s in report.suspects],
    }


def load(path: str) -> dict[str, Any]:
    """A snapshot file, checked enough to diff; `LeakwatchError` saying what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise LeakwatchError(f"cannot read snapshot {path!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise LeakwatchError(f"{path!r} is not JSON ({e}); a snapshot is what `leakwatch snapshot` saves") from None
    if not isinstance(doc, dict) or doc.get("leakwatch_snapshot") != FORMAT or not isinstance(doc.get("types"), dict):
        raise LeakwatchError(f"{path!r} is not a leakwatch snapshot (format {FORMAT}); take one with `leakwatch snapshot`")
    return doc


@dataclasses.dataclass(frozen=True)
class Growth:
    """What grew by one type or site between two snapshots."""

    kind: str  # "type" or "site"
    key: str
    before: float
    after: float
    unit: str  # "objects" or "bytes"
    retained: float | None = None  # bytes the type's objects hold, where the later snapshot knew it

    @property
    def delta(self) -> float:
        return self.after - self.before


def diff(a: Mapping[str, Any], b: Mapping[str, Any], rows: int = DIFF_ROWS) -> tuple[list[Growth], dict[str, float]]:
    """What grew from snapshot `a` to `b`: the types and sites that grew most (`rows` of each,
    largest growth first), and the change of each process memory figure."""
    retained = {
        (s.get("kind"), s.get("key")): s["retained"]["bytes"]
        for s in b.get("suspects", ())
        if isinstance(s.get("retained"), dict)
    }
    out: list[Growth] = []
    for kind, unit, field in (("type", "objects", "types"), ("site", "bytes", "sites")):
        before, after = a.get(field, {}), b.get(field, {})
        grown = [
            Growth(kind, key, float(before.get(key, 0.0)), float(value), unit, retained.get((kind, key)))
            for key, value in after.items()
            if float(value) > float(before.get(key, 0.0))
        ]
        out.extend(sorted(grown, key=lambda g: -g.delta)[:rows])
    process = {k: float(v) - float(a.get("process", {}).get(k, 0.0)) for k, v in b.get("process", {}).items()}
    return out, process


def format_diff(grown: Sequence[Growth], process: Mapping[str, float], seconds: float) -> str:
    """The diff for people: one line per type or site, largest growth first."""
    lines = [f"over {seconds:,.0f} s:"]
    for key in ("rss", "uss"):
        if key in process:
            lines.append(f"  process {key}: {'+' if process[key] >= 0 else ''}{human(process[key], 'bytes')}")
    if not grown:
        lines.append("  no type or site grew")
    for g in grown:
        held = f", holding about {human(g.retained, 'bytes')}" if g.retained is not None else ""
        span = f"{_amount(g.before, g.unit)} -> {_amount(g.after, g.unit)}"
        lines.append(f"  {g.kind} {g.key}: +{_amount(g.delta, g.unit)} ({span}){held}")
    return "\n".join(lines) + "\n"


def _amount(value: float, unit: str) -> str:
    """A count of objects is whole; bytes read as KiB, MiB, GiB."""
    return human(value, unit) if unit == "bytes" else f"{value:,.0f} objects"
