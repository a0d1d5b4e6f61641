"""The `leakwatch` command, run as a user would."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from leakwatch import demo
from leakwatch.cli import main
from leakwatch.config import OPTIONS

from .conftest import ROOT


def leakwatch(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leakwatch", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_names_the_leaking_type_and_site_within_30_seconds_and_never_the_cache(subprocess_env):
    result = leakwatch("demo", "--duration", "30", env=subprocess_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    flagged = re.findall(r"^\[\s*([\d.]+)s\] LEAK SUSPECTED\s+(\w+) (\S+): (.*)$", out, re.M)
    keys = {(kind, key) for _, kind, key, _ in flagged}
    # The type, and the line its objects come from (as the type's site, or as a site suspect).
    session = next(rest for _, kind, key, rest in flagged if (kind, key) == ("type", "leakwatch.demo.Session"))
    site_suspects = {key for kind, key in keys if kind == "site"}
    assert re.search(r"allocated at \S*leakwatch/demo\.py:\d+", session) or site_suspects, out
    assert all(re.search(r"leakwatch/demo\.py:\d+$", key) for key in site_suspects), out
    assert all(float(t) <= 30 for t, _, _, _ in flagged)
    assert "CacheEntry" not in out
    cache_lines = {
        i for i, line in enumerate(inspect.getsource(demo).splitlines(), 1) if "CacheEntry(" in line or "_cached" in line
    }
    assert not any(key.endswith(f"demo.py:{n}") for n in cache_lines for key in site_suspects), out


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["demo", "--duration", "-3"],
        ["demo", "--interval", "x"],
        ["run"],
        ["run", "-o", "interval=fast", "--", "true"],
        ["run", "-o", "nonsense=1", "--", "true"],
        ["demo", "--interval", "100"],
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args, subprocess_env):
    result = leakwatch(*args, env=subprocess_env, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leakwatch: error: "), result.stderr


def test_run_starts_the_watcher_inside_the_program_and_reports(subprocess_env, tmp_path):
    program = tmp_path / "app.py"
    program.write_text(
        "import sys, threading, time\n"
        "time.sleep(0.5)\n"
        "print('threads', sorted(t.name for t in threading.enumerate()))\n"
        "sys.exit(7)\n"
    )
    report = tmp_path / "report.json"
    result = leakwatch(
        "run",
        "-o",
        "interval=0.05",
        "-o",
        "window=1",
        "-o",
        "trace_window=0.5",
        "--report",
        str(report),
        "--",
        sys.executable,
        str(program),
        env=subprocess_env,
    )
    assert result.returncode == 7  # the program's own exit code
    assert "'leakwatch'" in result.stdout
    data = json.loads(report.read_text())
    assert data["samples"] >= 3
    # -o is the user's choice: used as given, though a census every 50 ms costs more than 1% of a core.
    assert (data["budget"]["interval"], data["budget"]["window"]) == (0.05, 1.0)
    # Half a second is less than warm-up (12 intervals) plus a window: too soon to judge, and it says so.
    assert "no leak suspected" not in result.stderr
    said = re.search(r"no verdict yet: (\d+) samples over [\d.]+ s; a verdict needs about ([\d.]+) s", result.stderr)
    assert said is not None, result.stderr
    assert int(said.group(1)) == data["samples"] and float(said.group(2)) == pytest.approx(data["verdict_after"], rel=0.05)


def test_run_chains_an_existing_sitecustomize(subprocess_env, tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['CHAINED'] = 'yes'\n")
    env = {**subprocess_env, "PYTHONPATH": f"{tmp_path}:{subprocess_env['PYTHONPATH']}"}
    code = "import os, threading; print(os.environ.get('CHAINED'), 'leakwatch' in [t.name for t in threading.enumerate()])"
    result = leakwatch("run", "--quiet", "--", sys.executable, "-c", code, env=env)
    assert result.returncode == 0
    assert result.stdout.split() == ["yes", "True"]
    assert result.stderr == ""


def test_nested_runs_put_the_bootstrap_on_the_path_once_and_start_one_watcher(subprocess_env, tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['CHAINED'] = 'yes'\n")
    env = {**subprocess_env, "PYTHONPATH": f"{tmp_path}:{subprocess_env['PYTHONPATH']}"}
    code = (
        "import os, threading; print(os.environ['PYTHONPATH'].count('bootstrap'), os.environ.get('CHAINED'), "
        "[t.name for t in threading.enumerate()].count('leakwatch'))"
    )
    inner = [sys.executable, "-m", "leakwatch", "run", "--quiet", "--", sys.executable, "-c", code]
    result = leakwatch("run", "--quiet", "--", *inner, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "yes", "1"]


def test_run_reports_a_missing_program(subprocess_env):
    result = leakwatch("run", "--", "no-such-program-here", env=subprocess_env)
    assert result.returncode == 127
    assert "no-such-program-here" in result.stderr


def test_options_lists_every_environment_variable(capsys):
    assert main(["options"]) == 0
    out = capsys.readouterr().out
    for opt in OPTIONS:
        assert opt.env in out


def test_help_and_version(subprocess_env):
    result = leakwatch("--help", env=subprocess_env)
    assert result.returncode == 0 and "demo" in result.stdout and "run" in result.stdout
    assert leakwatch("--version", env=subprocess_env).stdout.startswith("leakwatch ")


def test_run_reports_every_python_process_and_keeps_the_commands_own(subprocess_env, tmp_path):
    report = tmp_path / "report.json"
    report.write_text("stale")
    script = f"{sys.executable} -c 'import time; time.sleep(1.0)'; {sys.executable} -c 'import time; time.sleep(0.3)'; true"
    options = ("-o", "interval=0.05", "-o", "warmup=0", "-o", "window=0.25")  # judged after 0.3 s
    result = leakwatch("run", *options, "--report", str(report), "--", "bash", "-c", script, env=subprocess_env)
    assert result.returncode == 0
    assert len(re.findall(r"^leakwatch \[pid \d+\]: (no leak suspected|no verdict yet)", result.stderr, re.M)) == 2
    assert "no leak suspected" in result.stderr  # the one that ran a second
    assert result.stderr.count("[pid ") == 2
    data = json.loads(report.read_text())  # the longest-lived process, since bash itself has none
    assert data["samples"] >= 10


def test_run_exit_code_says_which_signal_killed_the_program(subprocess_env):
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    result = leakwatch("run", "--quiet", "--", sys.executable, "-c", code, env=subprocess_env)
    assert result.returncode == 128 + 15


TICKING = """
import sys, time
from leakwatch.api import current
seen = 0
while True:
    watcher = current()
    samples = watcher.report().samples if watcher is not None else 0
    if samples != seen:
        seen = samples
        print(samples, flush=True)
    time.sleep(0.005)
"""


def last_printed_until(proc: subprocess.Popen[str], samples: int) -> int:
    """Read the child's sample counts until it has printed `samples`; return the last."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= samples:
            return int(line)
    raise AssertionError("the program ended before ticking")


def test_sigterm_to_run_writes_the_report_of_the_last_tick_and_the_summary(subprocess_env, tmp_path):
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "leakwatch", "run", "-o", "interval=0.3", "--report", str(report), "--"]
    proc = subprocess.Popen(
        [*command, sys.executable, "-c", TICKING], env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    last = last_printed_until(proc, 5)
    proc.send_signal(signal.SIGTERM)  # to `leakwatch run`, as an orchestrator sends it
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    data = json.loads(report.read_text())
    # The child dies of the forwarded SIGTERM at once; a tick can finish after its last print.
    assert data["samples"] in (last, last + 1), (data["samples"], last)
    assert f"no verdict yet: {data['samples']} samples" in stderr


def test_a_process_killed_by_sigterm_leaves_its_last_ticks_report_file(subprocess_env, tmp_path):
    report = tmp_path / "report.json"
    code = f"import leakwatch; leakwatch.start(interval=0.3, report_file={str(report)!r})\n" + TICKING
    proc = subprocess.Popen([sys.executable, "-c", code], env=subprocess_env, stdout=subprocess.PIPE, text=True)
    last = last_printed_until(proc, 4)
    proc.send_signal(signal.SIGTERM)  # the default handler: no Python code runs
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert json.loads(report.read_text())["samples"] in (last, last + 1)


SERVICE = os.path.join(ROOT, "tests", "bench", "programs", "service.py")


@pytest.mark.slow
def test_run_at_true_defaults_names_a_steady_leak_within_minutes_and_not_the_cache(subprocess_env, tmp_path):
    """The README's promise as a new user meets it: no option, no LEAKWATCH_* variable."""
    assert not any(k.startswith("LEAKWATCH_") for k in subprocess_env)
    report = tmp_path / "report.json"
    program = [sys.executable, SERVICE, "--heap", "100000", "--leak-mib-per-min", "2", "--cache-fill", "120"]
    command = [sys.executable, "-m", "leakwatch", "run", "--report", str(report), "--", *program, "--duration", "420"]
    started = time.monotonic()
    proc = subprocess.Popen(command, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    named = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            suspects = json.loads(line).get("suspects", [])
            assert all(key.endswith("LeakedRecord") for _, key, _ in suspects), suspects  # never the cache
            if suspects:
                named = time.monotonic() - started
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert named is not None, stderr
    assert named < 300, "named within 5 minutes"
    data = json.loads(report.read_text())
    (suspect,) = data["suspects"]
    assert suspect["key"] == "__main__.LeakedRecord"
    assert (data["budget"]["interval"], data["budget"]["window"]) == (5.0, 240.0)
    assert "1 suspected leak(s)" in stderr and "LeakedRecord" in stderr


def test_snapshot_and_diff_round_trip_on_a_running_demo(subprocess_env, tmp_path):
    from .conftest import free_port, wait_for

    port = free_port()
    demo_proc = subprocess.Popen(
        [sys.executable, "-m", "leakwatch", "demo", "--duration", "60", "--port", str(port)],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        before, after = tmp_path / "before.json", tmp_path / "after.json"
        first = wait_for(
            lambda: (r := leakwatch("snapshot", "--url", url, "-o", str(before), env=subprocess_env)).returncode == 0 and r
        )
        assert f"wrote {before}" in first.stdout
        time.sleep(4)
        taken = leakwatch("snapshot", "--url", url, "-o", str(after), env=subprocess_env)
        assert taken.returncode == 0, taken.stderr
    finally:
        demo_proc.send_signal(signal.SIGINT)
        demo_proc.communicate(timeout=30)
    doc = json.loads(after.read_text())
    assert doc["leakwatch_snapshot"] == 1 and doc["types"]["leakwatch.demo.Session"] > 0 and doc["process"]["rss"] > 0
    result = leakwatch("diff", str(before), str(after), env=subprocess_env)
    assert result.returncode == 0, result.stderr
    grew = re.search(r"^  type leakwatch\.demo\.Session: \+([\d,]+) objects", result.stdout, re.M)
    assert grew and int(grew.group(1).replace(",", "")) > 100, result.stdout
    # Bad input says what is wrong, and loses nothing.
    (tmp_path / "junk.json").write_text("{}")
    bad = leakwatch("diff", str(before), str(tmp_path / "junk.json"), env=subprocess_env)
    assert bad.returncode == 1 and "is not a leakwatch snapshot" in bad.stderr
    missing = leakwatch("diff", str(tmp_path / "nope.json"), str(after), env=subprocess_env)
    assert missing.returncode == 1 and "cannot read snapshot" in missing.stderr


@pytest.mark.parametrize("args", [["options"], ["--help"], ["diff", "--help"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(args, subprocess_env):
    # A pipe whose reader is gone before the first write: every write fails with EPIPE.
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "leakwatch", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env,
            timeout=60,
        )
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode in (0, 141), (result.returncode, result.stderr[-2000:])
    # As a user types it: the first line, and nothing on stderr.
    piped = subprocess.run(
        f"{sys.executable} -m leakwatch {' '.join(args)} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=60,
    )
    assert piped.stderr == "" and len(piped.stdout.splitlines()) == 1
