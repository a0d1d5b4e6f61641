"""The command line called in-process: what each command prints and the exit code it returns
(0 done, 1 a failure outside leakwatch's control, 2 bad arguments), one line per error."""

from __future__ import annotations

import io
import socket

import pytest

from leakwatch._version import __version__
from leakwatch.cli import main
from leakwatch.config import OPTIONS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(list(argv), out)
    return code, out.getvalue(), capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leakwatch: error: "), err
    return lines[0]


def test_version_and_options_exit_0(capsys):
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"leakwatch {__version__}\n")
    code, out, _ = run(capsys, "options")
    assert code == 0 and all(opt.env in out for opt in OPTIONS)


def test_no_command_prints_the_help_and_exits_2(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "COMMAND" in out and "demo" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["demo", "--interval", "0"], "expected seconds between 0 and 86400"),
        (["demo", "--port", "70000"], "expected a port number from 0 to 65535"),
        (["run"], "run needs a command after '--'"),
        (["run", "-o", "interval=-1", "--", "python", "-c", "pass"], "-o 'interval=-1': allowed: a number from 0.01"),
        (["run", "-o", "nosuch=1", "--", "python", "-c", "pass"], "nosuch"),
        (["graph", "--url", "http://127.0.0.1:1", "--type", "dict", "-o", "g.png"], "must end in .json, .dot, .gv, .svg"),
        (["graph", "--url", "ftp://x", "--type", "dict"], "expected http://HOST:PORT"),
        (["graph", "--url", "http://127.0.0.1:1"], "one of the arguments --suspect --type --site is required"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, words):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert words in one_error_line(err)


def test_a_graph_from_a_process_that_does_not_answer_exits_1(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connection is refused
        code, _, err = run(capsys, "graph", "--url", f"http://127.0.0.1:{port}", "--type", "dict")
    assert code == 1 and f"cannot reach http://127.0.0.1:{port}" in one_error_line(err)


def test_serve_on_a_port_in_use_exits_1_and_says_so(capsys, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run(capsys, "serve", "--workers-dir", str(tmp_path), "--port", str(port))
    assert code == 1
    assert f"cannot serve on 127.0.0.1 port {port}" in err.strip().splitlines()[-1]
