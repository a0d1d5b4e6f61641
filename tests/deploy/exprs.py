"""The deploy/ files and the PromQL in them, for the tests here and the end-to-end test.

`dashboard_exprs()` and `rule_exprs()` read the files on every call; `substitute()` puts values
in place of the only Grafana variables a dashboard expression may use (`DASHBOARD_VARIABLES`),
so the result can be sent to a real Prometheus.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

try:
    import yaml
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("tests/deploy need PyYAML: pip install 'PyYAML>=6'") from e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "leakwatch-dashboard.json")
RULES = os.path.join(DEPLOY, "prometheus", "leakwatch-rules.yml")
RULES_TEST = os.path.join(DEPLOY, "prometheus", "leakwatch-rules.test.yml")
PROMETHEUS_CONFIG = os.path.join(DEPLOY, "prometheus", "prometheus.yml")
PROMETHEUS_RULE = os.path.join(DEPLOY, "kubernetes", "prometheusrule.yaml")
COMPOSE_DIR = os.path.join(DEPLOY, "compose")
COMPOSE = os.path.join(COMPOSE_DIR, "compose.yaml")
KUBERNETES_DIR = os.path.join(DEPLOY, "kubernetes")

# The Grafana variables dashboard expressions may use, and what `substitute` puts by default.
# worker: ".*", the dashboard's "All", which also matches the series of processes without one.
DASHBOARD_VARIABLES = {"job": ".+", "instance": ".+", "worker": ".*", "__rate_interval": "1m"}
# $name or ${name}; Grafana's legacy [[name]] form is rejected by the dashboard tests.
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def load_yaml(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_yaml_documents(path: str) -> list[Any]:
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def load_dashboard() -> dict[str, Any]:
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def dashboard_panels(dashboard: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in (dashboard or load_dashboard()).get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_targets(dashboard: dict[str, Any] | None = None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query target of every panel."""
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every target expression in deploy/grafana/leakwatch-dashboard.json."""
    return [(panel["title"], target["expr"]) for panel, target in dashboard_targets() if target.get("expr")]


def rule_groups(path: str = RULES) -> list[dict[str, Any]]:
    return load_yaml(path)["groups"]


def rule_exprs(path: str = RULES) -> list[tuple[str, str]]:
    """(alert or recording rule name, expr) for every rule in deploy/prometheus/leakwatch-rules.yml."""
    return [(rule.get("alert") or rule["record"], rule["expr"]) for group in rule_groups(path) for rule in group["rules"]]


def variables(expr: str) -> set[str]:
    """Names of the Grafana variables an expression uses."""
    return {braced or bare for braced, bare in VARIABLE.findall(expr)}


def substitute(expr: str, job: str = ".+", instance: str = ".+", rate_interval: str = "1m", worker: str = ".*") -> str:
    """`expr` with $job, $instance, $worker and $__rate_interval replaced; KeyError for any other variable."""
    values = {"job": job, "instance": instance, "worker": worker, "__rate_interval": rate_interval}
    return VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr)
