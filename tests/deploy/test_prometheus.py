"""The Prometheus files pass promtool: rules, their unit tests, both configs, the dashboard's PromQL."""

from __future__ import annotations

import os
import re

import yaml

from tests.deploy.exprs import (
    PROMETHEUS_CONFIG,
    PROMETHEUS_RULE,
    RULES,
    RULES_TEST,
    dashboard_exprs,
    load_yaml,
    load_yaml_documents,
    rule_exprs,
    rule_groups,
    substitute,
)

SEVERITIES = {"critical", "warning", "info"}


def passed(result) -> bool:
    return result.returncode == 0


def output(result) -> str:
    return f"exit code {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_rules_pass_promtool_check(promtool):
    result = promtool("check", "rules", RULES)
    assert passed(result), output(result)


def test_rule_unit_tests_pass(promtool):
    result = promtool("test", "rules", os.path.basename(RULES_TEST), cwd=os.path.dirname(RULES_TEST))
    assert passed(result), output(result)


def test_example_config_passes_promtool_check(promtool):
    # check config loads rule_files relative to the config file, so this also checks the rules it names.
    result = promtool("check", "config", PROMETHEUS_CONFIG)
    assert passed(result), output(result)
    assert "1 rule files found" in result.stdout


def test_example_config_scrapes_leakwatch_every_15s():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["leakwatch-rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "leakwatch"
    assert job["scrape_interval"] == "15s"
    assert job["static_configs"] == [{"targets": ["localhost:10464"]}]


def test_prometheusrule_rules_pass_promtool_check(promtool, tmp_path):
    (rule,) = [doc for doc in load_yaml_documents(PROMETHEUS_RULE) if doc["kind"] == "PrometheusRule"]
    path = tmp_path / "prometheusrule-rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False), encoding="utf-8")
    result = promtool("check", "rules", str(path))
    assert passed(result), output(result)


def test_every_dashboard_expr_is_valid_promql(promtool, tmp_path):
    # promtool parses recording rules' expressions, so the dashboard's queries (with Grafana's
    # variables filled in) are checked offline the same way.
    rules = [
        {"record": f"leakwatch:dashboard_expr_{i}", "expr": substitute(expr)} for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = promtool("check", "rules", str(path))
    assert passed(result), output(result) + "\n" + "\n".join(f"{t}: {e}" for t, e in dashboard_exprs())


def test_alerts_have_severity_summary_and_description():
    rules = [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]
    assert [group["name"] for group in rule_groups()] == ["leakwatch"]
    assert {rule["alert"] for rule in rules} >= {
        "LeakwatchLeakSuspected",
        "LeakwatchSuspectsOmitted",
        "LeakwatchMemoryLimitProjected",
        "LeakwatchErrors",
        "LeakwatchStalled",
        "LeakwatchOverBudget",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_rule_exprs_are_plain_promql_that_work_for_any_job_name():
    # No Go templates or Grafana variables in expressions, and no job name: a PodMonitor names
    # its job namespace/name, a ServiceMonitor after the Service.
    for name, expr in rule_exprs():
        # ("$1" in a label_replace replacement is PromQL's own, inside a string.)
        assert "{{" not in expr and "$" not in re.sub(r'"[^"]*"', '""', expr), name
        assert not re.search(r"\bjob\s*=", expr), name


def test_every_alert_has_a_firing_case_and_a_quiet_case():
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
            for alert in check.get("exp_alerts") or []:
                assert alert.get("exp_labels"), check["alertname"]
                assert set(alert.get("exp_annotations", {})) == {"summary", "description"}, check["alertname"]
    alerts = {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    assert alerts - fires == set(), "alerts never shown firing in leakwatch-rules.test.yml"
    assert alerts - quiet == set(), "alerts never shown staying quiet in leakwatch-rules.test.yml"


def test_rule_unit_tests_load_the_rules_file():
    assert load_yaml(RULES_TEST)["rule_files"] == [os.path.basename(RULES)]


def test_one_leak_is_one_alert_per_job_whatever_the_processes():
    (alert,) = [r for g in rule_groups() for r in g["rules"] if r.get("alert") == "LeakwatchLeakSuspected"]
    records = {r["record"]: r["expr"] for g in rule_groups() for r in g["rules"] if "record" in r}
    # The alert's series carry job and leak only: no instance, worker, kind or key.
    assert alert["expr"].split()[0] in records
    assert "by (job, leak)" in records[alert["expr"].split()[0]]
    assert all("by (job, leak" in expr for expr in records.values())
