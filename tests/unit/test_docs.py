"""The docs agree with the code and with deploy/, the README stays a front door, and the site builds.

The reference pages are generated from the code at build time by docs/hooks/reference.py, so
what is checked here is that every option, metric and subcommand has help to show, that the
generated pages show it as the code has it, and that the strict build (which runs the hook)
succeeds and renders every help text unchanged.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from leakwatch.cli import build_parser, main
from leakwatch.config import OPTIONS, Config
from leakwatch.exporters.prometheus import MAX_LABEL_LENGTH, METRICS, exposed_bytes_bound, exposed_series_bound
from tests.deploy.exprs import rule_groups

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
TEST_COMMAND = "python -m pytest tests"
README_MAX_LINES = 150


def load_reference() -> ModuleType:
    """The MkDocs hook that renders the reference pages, loaded by path as MkDocs loads it."""
    spec = importlib.util.spec_from_file_location("leakwatch_docs_reference", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_reference()
SUBCOMMANDS = list(reference.subcommands(build_parser()))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The body of a `## heading` section, up to the next `## ` heading."""
    if f"\n## {heading}\n" not in f"\n{text}":
        pytest.fail(f"no '## {heading}' section")
    body = f"\n{text}".split(f"\n## {heading}\n", 1)[1]
    return re.split(r"^## ", body, maxsplit=1, flags=re.M)[0]


# --- options --------------------------------------------------------------------------------------


def test_every_option_has_help_and_a_section_on_the_options_page():
    page = reference.options_markdown()
    for opt in OPTIONS:
        assert opt.help.strip(), f"option {opt.name} has no help"
        assert opt.env == "LEAKWATCH_" + opt.name.upper()
        body = section(page, f"`{opt.name}`")
        assert reference.text(opt.help) in body, opt.name
        assert f"`{opt.env}`" in body and reference.text(opt.allowed()) in body, opt.name


def test_options_table_lists_every_option_with_its_env_name_and_default():
    rows = re.findall(r"^\| \[`(\w+)`\]\(#(\w+)\) \| `(LEAKWATCH_\w+)` \| ([^|]+) \|$", reference.options_markdown(), re.M)
    assert [(name, anchor, env) for name, anchor, env, _ in rows] == [(o.name, o.name, o.env) for o in OPTIONS]
    for (name, _, _, default), opt in zip(rows, OPTIONS, strict=True):
        shown = html.unescape(default.strip())
        if opt.default is None:
            assert shown == "unset", name
        elif opt.kind == "bool":
            assert shown == str(opt.default).lower(), name
        elif opt.kind == "bytes":
            assert shown == (f"{opt.default // 1024**2} MiB" if opt.default else "0"), name
        elif opt.intervals is not None:
            assert shown == f"{opt.intervals:g} intervals ({opt.default:g} s)", name
        elif opt.kind == "seconds":
            assert shown == f"{opt.default:g} s", name
        elif opt.kind == "str":
            assert shown == f'"{opt.default}"', name
        else:
            assert shown == str(opt.default), name


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_table_lists_every_metric_the_collector_can_produce():
    for m in METRICS:
        assert m.help.strip(), f"metric {m.name} has no help"
        assert m.name.startswith("leakwatch_") and m.type in ("gauge", "counter", "histogram", "info"), m.name
    rows = re.findall(r"^\| `(leakwatch_\w+)` \| (\w+) \| ([^|]+) \| (.+) \|$", reference.metrics_markdown(), re.M)
    table = [(name, kind, tuple(re.findall(r"`(\w+)`", labels)), meaning) for name, kind, labels, meaning in rows]
    assert table == [(m.name, m.type, m.labels, reference.cell(m.help)) for m in METRICS]


def test_metrics_page_states_the_bounds_the_code_keeps():
    text = reference.metric_bounds_markdown()
    assert f"longer than {MAX_LABEL_LENGTH} characters" in text
    assert f"last {MAX_LABEL_LENGTH - 3} characters" in text
    assert f"at most {exposed_series_bound(Config())} leakwatch series and {exposed_bytes_bound(Config()):,} bytes" in text


# --- command line ---------------------------------------------------------------------------------


def test_every_subcommand_and_argument_has_help():
    parser = build_parser()
    assert SUBCOMMANDS, "no subcommands found"
    page = reference.cli_markdown()
    for name, (summary, sub) in reference.subcommands(parser).items():
        assert summary.strip(), f"'leakwatch {name}' has no one-line help"
        assert (sub.description or "").strip(), f"'leakwatch {name}' has no description"
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert (action.help or "").strip(), f"'leakwatch {name}' argument {action.dest} has no help"
        assert f"## `leakwatch {name}`" in page and f"$ leakwatch {name} --help" in page, name


@pytest.mark.parametrize("args", [[], *([name] for name in SUBCOMMANDS)], ids=["leakwatch", *SUBCOMMANDS])
def test_cli_page_shows_the_real_help(args, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*args, "--help"]) == 0
    help_text = capsys.readouterr().out.rstrip()
    page = reference.cli_markdown()
    assert f"$ leakwatch {' '.join(args)} --help".replace("  ", " ") in page
    assert help_text in page


def test_every_reference_section_is_placed_on_a_reference_page():
    placed = reference.pages_markers()
    assert sorted(name for names in placed.values() for name in names) == sorted(reference.SECTIONS)
    assert all(page.startswith("reference/") for page in placed), placed


# --- README and CONTRIBUTING ----------------------------------------------------------------------


def test_quick_start_gives_the_two_commands_first():
    text = read(README)
    block = re.search(r"## Quick start\s+```sh\n(.*?)```", text, re.S)
    assert block is not None
    assert block.group(1).splitlines() == ["pip install -e . && leakwatch demo", f"bash .ci/setup && {TEST_COMMAND}"]
    assert TEST_COMMAND in read(ROOT / ".ci" / "run"), "CI runs the README's test command"
    assert "## Contributors' CI" in text and "bash .ci/run" in text
    assert "](CONTRIBUTING.md)" in text and (ROOT / "CONTRIBUTING.md").exists()


def nav_pages() -> list[str]:
    """Every page in mkdocs.yml's nav."""

    def walk(items: list) -> list[str]:
        out: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out += walk(value) if isinstance(value, list) else [value]
        return out

    return walk(yaml.safe_load(read(ROOT / "mkdocs.yml"))["nav"])


def readme_links() -> list[tuple[str, str]]:
    """(docs page, anchor or "") for every README link into docs/."""
    return re.findall(r"\]\(docs/([^)#\s]+)(?:#([^)\s]+))?\)", read(README))


def test_readme_is_a_front_door_into_the_docs():
    lines = read(README).splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; the docs are the place for more"
    links = readme_links()
    for page, _ in links:
        assert (DOCS / page).is_file(), f"README links to docs/{page}, which does not exist"
    linked = {page for page, _ in links}
    missing = [page for page in nav_pages() if page != "index.md" and page not in linked]
    assert not missing, f"README.md does not link to {missing}"


def test_contributing_describes_the_layout_tests_and_docs():
    text = read(ROOT / "CONTRIBUTING.md")
    needed = ("## Layout", "bash .ci/run", "mkdocs serve", "mkdocs build --strict", '-m "not slow"', "--quick", "ruff", "mypy")
    for words in needed:
        assert words in text, words


# --- the hand-written pages -----------------------------------------------------------------------


def test_troubleshooting_states_the_defaults_and_the_time_to_verdict():
    text = read(DOCS / "troubleshooting.md")
    words = " ".join(text.split())
    defaults = {o.name: o.default for o in OPTIONS}
    interval, warmup, window = defaults["interval"], defaults["warmup"], defaults["window"]
    assert f"(interval {interval:g} s, warm-up {warmup:g} s, window {window:g} s)" in words
    # A steady leak is named one window after warm-up, plus a tick.
    assert f"about {warmup + window + interval:g} s" in words
    for heading in (
        "No verdict yet",
        "Port already in use",
        "One worker's series, and \"Address already in use\" from the others",
        "Graphs say held outside Python",
        "What `core_share` and `trace_budget=100` mean",
        "Window vs confirmation time",
        "An over-budget warning names an option I set",
    ):
        assert section(text, heading).strip(), heading


def deploy_page() -> str:
    return read(DOCS / "deploy.md")


def test_deploy_alert_table_lists_every_alert_with_its_severity():
    rules = [(r["alert"], r["labels"]["severity"]) for group in rule_groups() for r in group["rules"] if "alert" in r]
    assert re.findall(r"^\| `(\w+)` \| (\w+) \| .+ \|$", deploy_page(), re.M) == rules


def test_deploy_files_the_docs_name_exist():
    named = {path for page in DOCS.glob("*.md") for path in re.findall(r"`(deploy/[\w./-]+)`", read(page))}
    assert named
    for path in named:
        assert (ROOT / path).exists(), path


def test_deploy_page_warns_about_exposing_the_endpoint():
    text = deploy_page()
    assert "LEAKWATCH_HOST=0.0.0.0" in text
    assert "network policy" in text


# --- the site -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as CI builds it: strict, so any warning (a broken link or anchor) fails."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def page_text(site: Path, page: str) -> str:
    """A built page's article as plain text."""
    source = read(site / page / "index.html")
    article = source[source.index("<article") : source.index("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", "", article))


def test_the_site_builds_strict(site):
    for page in nav_pages():
        built = "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
        assert (site / built).is_file(), built


def test_built_reference_pages_show_every_help_unchanged(site):
    options = page_text(site, "reference/options")
    for opt in OPTIONS:
        assert opt.help in options, opt.name
        assert opt.env in options, opt.name
    metrics = page_text(site, "reference/metrics")
    for m in METRICS:
        assert m.name in metrics and m.help in metrics, m.name
    cli = page_text(site, "reference/cli")
    for name in SUBCOMMANDS:
        assert f"$ leakwatch {name} --help" in cli, name


def test_readme_anchors_exist_in_the_built_pages(site):
    for page, anchor in readme_links():
        if anchor:
            built = "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
            assert f'id="{anchor}"' in read(site / built), f"docs/{page}#{anchor}"
