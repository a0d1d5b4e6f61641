"""The dashboard and the rules name only metrics a scrape of a leakwatch process can hold."""

from __future__ import annotations

import re
import sys

import pytest
from prometheus_client import REGISTRY, generate_latest

from leakwatch.exporters.prometheus import METRICS
from tests.deploy.exprs import PROMETHEUS_RULE, RULES_TEST, dashboard_exprs, load_yaml, load_yaml_documents, rule_exprs

# prometheus_client's own collectors, scraped from the same endpoint; leakwatch does not repeat them.
CLIENT_METRICS = {
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
    "python_info",
    "python_gc_objects_collected_total",
    "python_gc_objects_uncollectable_total",
    "python_gc_collections_total",
}
# leakwatch metrics the dashboard may leave out, and why.
NOT_ON_DASHBOARD = {
    "leakwatch_samples_total": "runs per probe; Samples per second shows leakwatch_ticks_total",
    "leakwatch_trace_slowdown_ratio": "absent until leakwatch first wants a window of its own; "
    "what it costs shows in Tracing against its budget",
}
# Not the middle of a recording rule's name (job_leak:leakwatch_...:count).
METRIC_NAME = re.compile(r"(?<![:\w])(?:leakwatch|process|python)_\w+(?!:)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def exposed_names() -> set[str]:
    """Every series name METRICS can produce: histograms as _bucket, _sum and _count."""
    names = set()
    for spec in METRICS:
        if spec.type == "histogram":
            names.update(spec.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(spec.name)
    return names


def names_in(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(STRING.sub('""', expr)))


def prometheusrule_exprs() -> list[tuple[str, str]]:
    (rule,) = [doc for doc in load_yaml_documents(PROMETHEUS_RULE) if doc["kind"] == "PrometheusRule"]
    return [(r.get("alert") or r["record"], r["expr"]) for group in rule["spec"]["groups"] for r in group["rules"]]


def rule_test_series() -> list[tuple[str, str]]:
    series = []
    for case in load_yaml(RULES_TEST)["tests"]:
        for s in case.get("input_series", []):
            series.append((s["series"], s["series"].split("{", 1)[0].strip()))
    return series


@pytest.mark.parametrize(
    "where, exprs",
    [
        ("deploy/grafana/leakwatch-dashboard.json", dashboard_exprs),
        ("deploy/prometheus/leakwatch-rules.yml", rule_exprs),
        ("deploy/kubernetes/prometheusrule.yaml", prometheusrule_exprs),
    ],
)
def test_exprs_name_only_metrics_that_exist(where, exprs):
    known = exposed_names() | CLIENT_METRICS
    unknown = {(name, metric) for name, expr in exprs() for metric in names_in(expr) if metric not in known}
    assert unknown == set(), f"{where} names metrics leakwatch.exporters.prometheus.METRICS does not produce"


def test_rule_unit_tests_feed_only_metrics_that_exist():
    known = exposed_names() | CLIENT_METRICS
    assert {series for series, name in rule_test_series() if name not in known} == set()


def test_dashboard_shows_every_leakwatch_metric():
    shown = {metric for _, expr in dashboard_exprs() for metric in names_in(expr)}
    missing = {spec.name for spec in METRICS} - {m.removesuffix("_bucket") for m in shown} - set(NOT_ON_DASHBOARD)
    assert missing == set(), "add a panel to deploy/grafana/leakwatch-dashboard.json (or list the metric in NOT_ON_DASHBOARD)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prometheus_client's process collector reads /proc")
def test_client_metrics_are_what_prometheus_client_exposes():
    exposition = generate_latest(REGISTRY).decode()
    exposed = set(re.findall(r"^(\w+)[{ ]", exposition, re.M))
    assert CLIENT_METRICS - exposed == set()
