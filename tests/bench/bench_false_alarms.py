"""How often wandering working sets are named, at the defaults and at the earlier whole-window hold.

    python tests/bench/bench_false_alarms.py [--seeds 12] [--hours 1]

Drives the real history and detector (`leakwatch.testing.simulate`, no clock, no heap) with
made-up series sampled every 5 s: unbounded random walks (steps of sd 30 objects) and slowly
mean-reverting ones (Ornstein-Uhlenbeck, 500 s correlation time, steps of sd 60), and steady
leaks of 1, 3 and 10 objects a second. Prints how many series of each were named within the
time, and when the leaks were named, for today's defaults and for the earlier ones (warm-up
60 s, window 300 s, a whole-window hold): the trade docs/detection.md states.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from collections.abc import Callable, Sequence
from unittest import mock

from leakwatch import detector
from leakwatch.detector import Params
from leakwatch.testing import simulate

INTERVAL = 5.0
SETTINGS = {
    "defaults": (Params(can_trace=False), detector.CONFIRM),
    "earlier (300 s window, whole-window hold)": (dataclasses.replace(Params(can_trace=False), warmup=60.0, window=300.0), 1.0),
}


def random_walk(seed: int) -> Callable[[float], float]:
    rng, state = random.Random(seed), [5000.0]

    def value(_t: float) -> float:
        state[0] = max(0.0, state[0] + rng.gauss(0, 30))
        return state[0]

    return value


def mean_reverting(seed: int) -> Callable[[float], float]:
    rng, state = random.Random(seed + 100), [5000.0]

    def value(_t: float) -> float:
        state[0] += -0.01 * (state[0] - 5000) + rng.gauss(0, 60)
        return state[0]

    return value


def first_named(signal: Callable[[float], float], params: Params, confirm: float, seconds: float) -> float | None:
    with mock.patch.object(detector, "CONFIRM", confirm), mock.patch.object(detector, "SITE_TRIGGER_AGE", confirm):
        verdicts = simulate({("type", "app.Thing"): signal}, duration=seconds, interval=INTERVAL, params=params)
    return next((i * INTERVAL for i, v in enumerate(verdicts) if v.suspects), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args(argv)
    seconds = args.hours * 3600
    for name, (params, confirm) in SETTINGS.items():
        walks = sum(first_named(random_walk(s), params, confirm, seconds) is not None for s in range(args.seeds))
        reverting = sum(first_named(mean_reverting(s), params, confirm, seconds) is not None for s in range(args.seeds))
        rng = random.Random(5)
        leaks = [
            first_named(lambda t, r=rate, g=rng: 1000 + r * t + g.gauss(0, 30), params, confirm, 900.0)
            for rate in (1.0, 3.0, 10.0)
        ]
        print(
            f"{name}: random walks named {walks}/{args.seeds}, mean-reverting named {reverting}/{args.seeds} "
            f"within {args.hours:g} h; leaks of 1, 3, 10 objects/s named after {leaks} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
