from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGRAMS = os.path.join(ROOT, "tests", "integration", "programs")
# These tests judge in seconds (intervals of 0.01 to 0.1 s): at that pace the default budgets
# would stretch every interval and space every tracing window out of the test's time. The
# budgets have their own tests (tests/unit/test_governor.py, and the ones in test_watcher.py
# that pass cpu_budget and trace_budget as keywords, which win over these).
UNBUDGETED = {"LEAKWATCH_CPU_BUDGET": "1", "LEAKWATCH_TRACE_BUDGET": "100"}


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


@pytest.fixture(autouse=True)
def unbudgeted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in UNBUDGETED.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for child Pythons: this checkout importable, no stray LEAKWATCH_*
    but the budgets lifted (see UNBUDGETED)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    env.update(UNBUDGETED)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
