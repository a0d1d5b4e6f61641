"""The Grafana dashboard: stable identity, the three variables, and queries that filter on them."""

from __future__ import annotations

import re

import pytest

from tests.deploy.exprs import (
    DASHBOARD_VARIABLES,
    dashboard_exprs,
    dashboard_panels,
    dashboard_targets,
    load_dashboard,
    rule_exprs,
    rule_groups,
    substitute,
    variables,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = re.compile(r"(?<![:\w])((?:leakwatch|process|python)_\w+)\s*(\{[^}]*\})?")
# Recording rules' series (level:metric:operations) carry only the labels they aggregate by.
RECORDED = re.compile(r"\b(\w+:\w+:\w+)\s*(\{[^}]*\})?")


def variable(name: str) -> dict:
    (var,) = [v for v in load_dashboard()["templating"]["list"] if v["name"] == name]
    return var


def query_of(var: dict) -> str:
    query = var["query"]
    return query["query"] if isinstance(query, dict) else query


def test_identity_is_stable():
    dashboard = load_dashboard()
    assert dashboard["uid"] == "leakwatch"
    assert dashboard["title"] == "leakwatch"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert "id" not in dashboard or dashboard["id"] is None  # an id would tie the file to one Grafana database


def test_variables_are_datasource_job_instance_and_worker():
    assert [v["name"] for v in load_dashboard()["templating"]["list"]] == ["datasource", "job", "instance", "worker"]
    datasource = variable("datasource")
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    job, instance, worker = variable("job"), variable("instance"), variable("worker")
    assert query_of(job) == "label_values(leakwatch_info, job)"
    assert query_of(instance) == 'label_values(leakwatch_info{job=~"$job"}, instance)'
    assert query_of(worker) == 'label_values(leakwatch_info{job=~"$job", instance=~"$instance"}, worker)'
    for var in (job, instance, worker):
        assert var["type"] == "query"
        assert var["datasource"] == DATASOURCE
        assert var["multi"] is True and var["includeAll"] is True
    # A custom "All" value such as .* would match targets that do not run leakwatch
    # (process_resident_memory_bytes comes from every Python exporter); job and instance have none.
    assert not job.get("allValue") and not instance.get("allValue")
    # Within those targets, "All" workers must also match the series of a process that is no
    # pre-fork server (they have no worker label), which only .* does.
    assert worker["allValue"] == ".*"


def test_the_dashboard_says_what_it_requires():
    requires = {(r["type"], r["id"]) for r in load_dashboard()["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= requires
    assert {("panel", p["type"]) for p in dashboard_panels() if p["type"] != "row"} <= requires


def test_every_panel_has_a_title_a_description_and_the_datasource_variable():
    for panel in dashboard_panels():
        assert panel.get("title"), panel.get("id")
        if panel["type"] == "row":
            continue
        assert panel.get("description", "").strip(), panel["title"]
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel.get("targets"), panel["title"]


def test_every_target_uses_the_datasource_variable():
    for panel, target in dashboard_targets():
        assert target.get("datasource") == DATASOURCE, panel["title"]
        assert target.get("expr"), panel["title"]


RECORDING_RULES = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}


def test_every_selector_filters_on_job_instance_and_worker():
    for panel, target in dashboard_targets():
        selectors = SELECTOR.findall(target["expr"])
        recorded = RECORDED.findall(target["expr"])
        assert selectors or recorded, (panel["title"], target["expr"])
        for metric, matchers in recorded:
            assert metric in RECORDING_RULES, (panel["title"], metric)
            assert {m.replace(" ", "") for m in matchers.strip("{}").split(",")} == {'job=~"$job"'}, (panel["title"], metric)
        for metric, matchers in selectors:
            found = {m.replace(" ", "") for m in matchers.strip("{}").split(",")}
            assert {'job=~"$job"', 'instance=~"$instance"', 'worker=~"$worker"'} <= found, (panel["title"], metric)


def test_exprs_use_only_the_dashboards_variables():
    for panel, target in dashboard_targets():
        expr = target["expr"]
        assert "[[" not in expr, panel["title"]
        assert variables(expr) <= set(DASHBOARD_VARIABLES), (panel["title"], expr)
        assert expr.count("$") == sum(expr.count(f"${name}") + expr.count(f"${{{name}") for name in DASHBOARD_VARIABLES)


def test_tables_query_the_latest_value_only():
    tables = [panel for panel in dashboard_panels() if panel["type"] == "table"]
    assert [panel["title"] for panel in tables] == ["Current suspects", "Leaks across the fleet"]
    for panel in tables:
        for target in panel["targets"]:
            assert target.get("instant") is True and target.get("range") is False, target["refId"]
            assert target.get("format") == "table", target["refId"]


def test_panels_have_unique_ids_and_do_not_overlap():
    panels = list(dashboard_panels())
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_ref_ids_are_unique_within_each_panel():
    for panel in dashboard_panels():
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


def test_helpers_list_every_expr_and_fill_in_the_variables():
    exprs = dashboard_exprs()
    assert len(exprs) == sum(1 for _ in dashboard_targets())
    assert all(isinstance(title, str) and title and isinstance(expr, str) and expr for title, expr in exprs)
    assert "LeakwatchLeakSuspected" in [name for name, _ in rule_exprs()]
    expr = 'rate(x{job=~"$job", instance=~"${instance}"}[$__rate_interval])'
    assert substitute(expr, job="app", instance="a:10464", rate_interval="2m") == 'rate(x{job=~"app", instance=~"a:10464"}[2m])'
    for _, expr in exprs:
        assert "$" not in substitute(expr)
    with pytest.raises(KeyError):
        substitute("x[$__interval]")
