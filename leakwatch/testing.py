"""Helpers for tests, ours and users': a fake clock, a detector driven by made-up signals, and
a fixed report for exporters (render the metrics of a hand-built `Report`).

from leakwatch.testing import simulate
verdicts = simulate({("type", "app.Session"): lambda t: 10 * t}, duration=120, interval=1)
assert verdicts[-1].suspects
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from leakwatch.config import Config
from leakwatch.detector import Params, Verdict, detect
from leakwatch.history import History
from leakwatch.model import Report, Sample

Signal = Callable[[float], float]


@dataclasses.dataclass
class FixedReport:
    """What an exporter reads from a watcher (`config`, `report()`), holding one given report:
    ``LeakwatchCollector(FixedReport(Config(), report))`` renders exactly that report."""

    config: Config
    current: Report

    def report(self) -> Report:
        return self.current


class FakeClock:
    """A clock that moves only when told to: `clock()` reads it, `advance(s)` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def simulate(
    signals: Mapping[tuple[str, str], Signal],
    duration: float,
    interval: float,
    params: Params | None = None,
    *,
    max_series: int = 256,
    points: int = 128,
    tracing: Callable[[float], bool] | None = None,
) -> list[Verdict]:
    """Feed `signals` (value as a function of seconds since start) to a history and the detector
    tick by tick, as the watcher would; return the verdict after every tick.

    A signal may return None to leave its key out of that sample. `tracing(t)` says whether a
    tracing window is open at t (site signals are then judged).
    """
    history = History(max_series=max_series, points=points)
    verdict = Verdict()
    verdicts: list[Verdict] = []
    steps = int(round(duration / interval))
    for i in range(steps + 1):
        t = i * interval
        values: dict[str, dict[str, float]] = {}
        for (kind, key), signal in signals.items():
            value = signal(t)
            if value is not None:
                values.setdefault(kind, {})[key] = float(value)
        history.add(Sample(t=t, values=values), verdict.protected())
        verdict = detect(history, verdict, params, tracing=bool(tracing and tracing(t)))
        verdicts.append(verdict)
    return verdicts
