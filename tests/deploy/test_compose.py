"""deploy/compose: valid against the Compose Specification, and its files and names line up.

The schema is the copy of compose-spec.json that check-jsonschema vendors (test dependency
`check-jsonschema==0.39.0`), used through its command line, so nothing is fetched.
"""

from __future__ import annotations

import importlib.util
import os
import posixpath
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.deploy.exprs import COMPOSE, COMPOSE_DIR, DEPLOY, ROOT, load_yaml

CHECK_JSONSCHEMA = "pip install check-jsonschema==0.39.0"


def validate(path: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.fail(f"the Compose schema test needs check-jsonschema: {CHECK_JSONSCHEMA}")
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", path]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def services() -> dict:
    return load_yaml(COMPOSE)["services"]


def bind_mounts(service: str) -> dict[str, str]:
    """Container path -> host path (absolute) of a service's bind mounts, in short syntax."""
    mounts = {}
    for volume in services()[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = os.path.normpath(os.path.join(COMPOSE_DIR, source))
    return mounts


def test_compose_file_is_valid_against_the_compose_spec():
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_an_invalid_file(tmp_path):
    # Guards against a check that passes everything (a missing or empty vendored schema).
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  app:\n    image: python:3.11-slim\n    restrat: always\n", encoding="utf-8")
    result = validate(str(bad))
    assert result.returncode != 0 and "restrat" in result.stdout, result.stdout + result.stderr


def test_bind_mounts_point_at_files_in_this_checkout():
    for name in services():
        for target, source in bind_mounts(name).items():
            assert os.path.exists(source), f"{name}: {source} (mounted at {target}) does not exist"
            assert os.path.commonpath([source, ROOT]) == ROOT, f"{name}: {source} is outside the checkout"
            if os.path.splitext(target)[1] in (".yml", ".yaml", ".json"):
                assert os.path.isfile(source), f"{name}: {target} is a file in the container"


def test_app_serves_metrics_to_the_other_containers():
    app = services()["app"]
    env = app["environment"]
    assert env["LEAKWATCH_HOST"] == "0.0.0.0"
    assert str(env["LEAKWATCH_PORT"]) in [str(p) for p in app.get("expose", [])]
    assert "python -m leakwatch demo" in " ".join(app["command"])
    assert app.get("mem_limit"), "without a limit there is no leakwatch_memory_limit_bytes to alert on"
    assert os.path.isfile(os.path.join(bind_mounts("app")["/src"], "pyproject.toml"))


def test_prometheus_scrapes_the_app_and_loads_the_rules():
    prometheus = services()["prometheus"]
    mounts = bind_mounts("prometheus")
    (config_flag,) = [arg for arg in prometheus["command"] if arg.startswith("--config.file=")]
    config_target = config_flag.split("=", 1)[1]
    assert mounts[config_target] == os.path.join(COMPOSE_DIR, "prometheus.yml")
    config = load_yaml(mounts[config_target])
    for rule_file in config["rule_files"]:
        target = posixpath.join(posixpath.dirname(config_target), rule_file)
        assert mounts.get(target) == os.path.join(DEPLOY, "prometheus", "leakwatch-rules.yml"), rule_file
    targets = [t for job in config["scrape_configs"] for static in job["static_configs"] for t in static["targets"]]
    assert targets == [f"app:{services()['app']['environment']['LEAKWATCH_PORT']}"]


def test_compose_prometheus_config_passes_promtool_check(promtool, tmp_path):
    # Lay the mounted files out as the container sees them, then check the config there.
    mounts = bind_mounts("prometheus")
    for target, source in mounts.items():
        if os.path.isfile(source):
            destination = tmp_path / target.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    result = promtool("check", "config", str(tmp_path / "etc" / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_grafana_provisions_the_datasource_and_the_dashboard():
    grafana = services()["grafana"]
    mounts = bind_mounts("grafana")
    assert mounts["/etc/grafana/provisioning"] == os.path.join(DEPLOY, "grafana", "provisioning")
    (dashboard_target,) = [t for t, s in mounts.items() if s == os.path.join(DEPLOY, "grafana", "leakwatch-dashboard.json")]
    provider = load_yaml(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "leakwatch.yaml"))
    (dashboards,) = provider["providers"]
    assert dashboards["type"] == "file"
    assert posixpath.dirname(dashboard_target) == dashboards["options"]["path"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == dashboard_target
    (datasource,) = load_yaml(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yaml"))["datasources"]
    url = urlsplit(datasource["url"])
    assert (url.hostname, url.port) == ("prometheus", 9090)
    assert url.hostname in services()
    assert datasource["type"] == "prometheus" and datasource["uid"]
