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
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from leakwatch.config import Config
from leakwatch.errors import LeakwatchError
from leakwatch.files import write_atomically
from leakwatch.model import Report, human

logger = logging.getLogger(__name__)

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


class Baseline:
    """The start-up snapshot of the `baseline_file` option: taken once warm-up ends, saved for
    `leakwatch diff`, and each later report's type suspects' counts in it (`annotate`)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.at = 0.0
        self.types: dict[str, float] | None = None

    def after_tick(self, report: Report, take: Callable[[], dict[str, Any]]) -> None:
        """Take the snapshot (`take()`) once warm-up has ended, and save it."""
        if self.types is not None or not report.samples or report.watched < self._config.warmup:
            return
        doc = take()
        self.at, self.types = float(doc["time"]), {str(k): float(v) for k, v in doc["types"].items()}
        path = self._config.baseline_file.replace("{pid}", str(os.getpid()))
        try:
            write_atomically(path, json.dumps(doc, indent=1) + "\n")
        except OSError as e:
            logger.warning("leakwatch: cannot write the baseline snapshot to %s: %s", path, e.strerror or e)
            return
        logger.info("leakwatch: baseline snapshot (%d types) saved to %s", len(self.types), path)

    def annotate(self, report: Report) -> Report:
        types = self.types
        if types is None:
            return report
        counts = {s.key: types.get(s.key, 0.0) for s in report.suspects if s.kind == "type"}
        return dataclasses.replace(report, baseline_at=self.at, baseline=counts)


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
