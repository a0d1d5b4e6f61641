"""README tables and help texts that mirror code must agree with it."""

from __future__ import annotations

import os
import re
import sys

import pytest

from leakwatch.cli import main
from leakwatch.config import OPTIONS, Config
from leakwatch.exporters.prometheus import MAX_LABEL_LENGTH, METRICS, exposed_bytes_bound, exposed_series_bound

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")


def readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_quick_start_gives_the_two_commands_first():
    text = readme()
    block = re.search(r"## Quick start\s+```sh\n(.*?)```", text, re.S)
    assert block is not None
    test_command = "python -m pytest tests"
    assert block.group(1).splitlines() == ["pip install -e . && leakwatch demo", f"bash .ci/setup && {test_command}"]
    with open(os.path.join(os.path.dirname(README), ".ci", "run"), encoding="utf-8") as f:
        assert test_command in f.read(), "CI runs the README's test command"
    assert "## Contributors' CI" in text and "bash .ci/run" in text


def test_options_table_lists_every_option_with_its_env_name():
    rows = re.findall(r"^\| `(\w+)` \| `(LEAKWATCH_\w+)` \| ([^|]+) \| (.+) \|$", readme(), re.M)
    assert [(name, env) for name, env, _, _ in rows] == [(o.name, o.env) for o in OPTIONS]
    for (name, _, default, meaning), opt in zip(rows, OPTIONS, strict=False):
        assert meaning == opt.help, name
        shown = default.strip()
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


def test_metrics_table_lists_every_metric_the_collector_can_produce():
    rows = re.findall(r"^\| `(leakwatch_\w+)` \| (\w+) \| ([^|]+) \| (.+) \|$", readme(), re.M)
    table = [(name, kind, tuple(re.findall(r"`(\w+)`", labels)), meaning) for name, kind, labels, meaning in rows]
    assert table == [(m.name, m.type, m.labels, m.help) for m in METRICS]


def test_metrics_section_states_the_bounds_the_code_keeps():
    text = readme()
    assert f"longer than {MAX_LABEL_LENGTH} characters" in text
    assert f"at most {exposed_series_bound(Config())} leakwatch series and {exposed_bytes_bound(Config()):,} bytes" in text


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="argparse words its help differently on other versions")
@pytest.mark.parametrize("args", [[], ["demo"], ["run"]])
def test_readme_shows_the_real_help(args, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main([*args, "--help"])
    help_text = capsys.readouterr().out.rstrip()
    assert f"$ leakwatch {' '.join(args)} --help".replace("  ", " ") in readme()
    assert help_text in readme()
