"""Metric cardinality stays bounded under a program with 10,000 distinct growing types and
10,000 distinct growing allocation sites (tests/bench/many_growing.py, a real program)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from leakwatch.config import Config
from leakwatch.exporters.prometheus import MAX_LABEL_LENGTH, exposed_bytes_bound, exposed_series_bound
from tests.integration.conftest import ROOT

PROGRAM = os.path.join(ROOT, "tests", "bench", "many_growing.py")


def own_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines(keepends=True)
        if line.startswith(("leakwatch_", "# HELP leakwatch_", "# TYPE leakwatch_"))
    ]


def test_exposition_stays_within_its_bound_under_10000_growing_types_and_sites(subprocess_env):
    proc = subprocess.Popen(
        [sys.executable, PROGRAM, "--types", "10000", "--sites", "10000"], env=subprocess_env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        address = re.search(r"serving (\S+)", proc.stdout.readline()).group(1)
        bound_series = exposed_series_bound(Config())
        bound_bytes = exposed_bytes_bound(Config())
        saw_omitted = saw_types = False
        deadline = time.monotonic() + 90
        while not (saw_omitted and saw_types) and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as r:
                text = r.read().decode()
            lines = own_lines(text)
            series = [line for line in lines if not line.startswith("#")]
            assert len(series) <= bound_series
            assert sum(len(line.encode()) for line in lines) <= bound_bytes
            families = {f.name: f.samples for f in text_string_to_metric_families(text)}
            for samples in families.values():
                for s in samples:
                    assert all(len(v) <= MAX_LABEL_LENGTH for v in s.labels.values())
            if families["leakwatch_census_types"] and families["leakwatch_census_types"][0].value >= 10_000:
                saw_types = len(families["leakwatch_census_objects"]) == Config().top_k
            omitted = families["leakwatch_suspects_omitted"][0].value
            if omitted > 0:
                saw_omitted = len(families["leakwatch_suspect_confidence_ratio"]) == Config().max_suspect_series
            time.sleep(0.5)
        assert saw_types, "the census never saw the 10,000 types"
        assert saw_omitted, "the suspects never passed the cap"
    finally:
        proc.kill()
        proc.wait(10)
