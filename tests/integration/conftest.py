from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGRAMS = os.path.join(ROOT, "tests", "integration", "programs")


def wait_for(condition: Callable[[], object], timeout: float = 30.0, step: float = 0.02) -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for child Pythons: this checkout importable, no stray LEAKWATCH_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
