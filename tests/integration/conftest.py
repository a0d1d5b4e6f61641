from __future__ import annotations

import os
import re
import socket
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


# What leakwatch rightly logs when a test's explicit interval costs more than the default cpu_budget.
OVER_BUDGET = re.compile(r"^leakwatch: a sample of [\d,]+ objects costs .* is used as given\. .*$")


def noise(stderr: str) -> list[str]:
    """The lines of a child's stderr other than the over-budget warning a fast test interval earns."""
    return [line for line in stderr.splitlines() if line and not OVER_BUDGET.match(line)]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server that takes a port number rather than a socket;
    never the same one twice in this run, so two asked for together differ."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for child Pythons: this checkout importable, no stray LEAKWATCH_*
    (leakwatch runs as a user's program would, with the options its test passes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
