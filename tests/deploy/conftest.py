from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def promtool() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs promtool with the given arguments; fails (never skips) when promtool is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: apt-get install prometheus (CI installs it)")

    def run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=120)

    return run
