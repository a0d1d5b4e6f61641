"""The README's deploy section agrees with deploy/: its alert table and the files it names."""

from __future__ import annotations

import os
import re

import pytest

from tests.deploy.exprs import ROOT, rule_groups

HEADING = "## Deploy: Prometheus, Grafana, Kubernetes"
ALERT_ROW = re.compile(r"^\| `(\w+)` \| (\w+) \| .+ \|$", re.M)


def section() -> str:
    """The deploy section of README.md."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    if HEADING not in text:
        pytest.fail(f"no '{HEADING}' section in README.md")
    body = text.split(HEADING, 1)[1]
    return re.split(r"^## ", body, maxsplit=1, flags=re.M)[0]


def test_alert_table_lists_every_alert_with_its_severity():
    rules = [(r["alert"], r["labels"]["severity"]) for group in rule_groups() for r in group["rules"]]
    assert ALERT_ROW.findall(section()) == rules


def test_files_the_section_names_exist():
    for path in set(re.findall(r"`(deploy/[\w./-]+)`", section())):
        assert os.path.exists(os.path.join(ROOT, path)), path


def test_section_warns_about_exposing_the_endpoint():
    text = section()
    assert "LEAKWATCH_HOST=0.0.0.0" in text
    assert "network policy" in text
