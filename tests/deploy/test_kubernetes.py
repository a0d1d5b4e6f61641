"""deploy/kubernetes: the examples parse, their ports and selectors line up, the rules match."""

from __future__ import annotations

import os

from tests.deploy.exprs import KUBERNETES_DIR, PROMETHEUS_RULE, RULES, load_yaml, load_yaml_documents

MONITORING = "monitoring.coreos.com/v1"


def objects(filename: str) -> dict[str, dict]:
    """The file's objects by kind (each example holds at most one of a kind)."""
    docs = load_yaml_documents(os.path.join(KUBERNETES_DIR, filename))
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs), f"{filename} has two objects of one kind"
    return by_kind


def deployment() -> dict:
    return objects("deployment.yaml")["Deployment"]


def pod_labels() -> dict[str, str]:
    return deployment()["spec"]["template"]["metadata"]["labels"]


def container() -> dict:
    (app,) = deployment()["spec"]["template"]["spec"]["containers"]
    return app


def container_ports() -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container()["ports"]}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_every_file_parses_into_kubernetes_objects():
    files = sorted(f for f in os.listdir(KUBERNETES_DIR) if f.endswith((".yaml", ".yml")))
    assert files == ["deployment.yaml", "podmonitor.yaml", "prometheusrule.yaml", "servicemonitor.yaml"]
    for filename in files:
        for doc in load_yaml_documents(os.path.join(KUBERNETES_DIR, filename)):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], filename


def test_deployment_serves_leakwatch_on_its_named_port_to_the_network():
    env = {var["name"]: var["value"] for var in container()["env"]}
    assert container_ports()["leakwatch"] == int(env["LEAKWATCH_PORT"]) == 10464
    assert env["LEAKWATCH_HOST"] == "0.0.0.0"
    assert container()["resources"]["limits"]["memory"], "the limit becomes leakwatch_memory_limit_bytes"
    assert selects(deployment()["spec"]["selector"]["matchLabels"], pod_labels())


def test_network_policy_opens_the_leakwatch_port_to_the_monitoring_namespace_only():
    policy = objects("deployment.yaml")["NetworkPolicy"]
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels())
    rules = [rule for rule in policy["spec"]["ingress"] if any(p["port"] == "leakwatch" for p in rule["ports"])]
    assert rules, "no ingress rule for the leakwatch port"
    for rule in rules:
        assert rule.get("from"), "the leakwatch port is open to everyone"
        assert all("namespaceSelector" in peer or "podSelector" in peer for peer in rule["from"])
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in container_ports(), port


def test_service_and_servicemonitor_select_the_pods_and_the_named_port():
    found = objects("servicemonitor.yaml")
    service, monitor = found["Service"], found["ServiceMonitor"]
    assert monitor["apiVersion"] == MONITORING
    assert selects(service["spec"]["selector"], pod_labels())
    (port,) = service["spec"]["ports"]
    assert port["name"] == "leakwatch" and port["port"] == 10464
    assert port["targetPort"] in container_ports()
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == "/metrics"


def test_podmonitor_selects_the_pods_and_the_named_port():
    monitor = objects("podmonitor.yaml")["PodMonitor"]
    assert monitor["apiVersion"] == MONITORING
    assert selects(monitor["spec"]["selector"]["matchLabels"], pod_labels())
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in container_ports()
    assert endpoint["port"] == "leakwatch"
    assert endpoint["path"] == "/metrics"


def test_prometheusrule_carries_exactly_the_rules_file():
    rule = objects(os.path.basename(PROMETHEUS_RULE))["PrometheusRule"]
    assert rule["apiVersion"] == MONITORING
    assert rule["spec"] == load_yaml(RULES), (
        "deploy/kubernetes/prometheusrule.yaml must hold deploy/prometheus/leakwatch-rules.yml's groups, indented under spec:"
    )
