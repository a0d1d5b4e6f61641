"""The `leakwatch` command: the only code in leakwatch that prints or picks exit codes.

It is a little over 500 lines because every command's words live here, its arguments and help in
`build_parser` and its behaviour in one function (demo, run, serve, graph, snapshot, diff,
options); what a command does beyond printing is in the modules it calls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import NoReturn, TextIO

from leakwatch.config import OPTIONS, SUGGESTED_PORT, Config, parse_text
from leakwatch.errors import ConfigError, LeakwatchError
from leakwatch.files import write_atomically
from leakwatch.model import Report, Suspect, seconds

PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell reports for a tool its pipe's reader left
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")


class CLIError(Exception):
    """An error the command line reports in one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="leakwatch",
        description="Find memory leaks in running Python programs, with statistics instead of eyeballing.",
        epilog="Options can also come from LEAKWATCH_* environment variables: 'leakwatch options' lists them. "
        "Exit codes: 0 done; 1 a failure outside leakwatch's control (a server that does not answer, a file it "
        "cannot read or write); 2 bad arguments; 141 the reader of the output went away (a closed pipe); "
        "leakwatch run exits with its program's code.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="run a small service with one real leak and one bounded cache, and watch it",
        description="Run a built-in service that leaks Session objects and keeps a bounded LRU cache, "
        "with leakwatch watching it; suspects are printed as they are confirmed or cleared.",
    )
    demo.add_argument(
        "--duration",
        type=_positive_seconds,
        default=45.0,
        metavar="SECONDS",
        help="stop after this many seconds (default 45; Ctrl-C stops sooner)",
    )
    demo.add_argument(
        "--interval", type=_positive_seconds, default=0.25, metavar="SECONDS", help="time between samples (default 0.25)"
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also serve /metrics and /api/suspects on 127.0.0.1:PORT (0 picks a free port)",
    )

    run = sub.add_parser(
        "run",
        help="run a Python program with leakwatch started inside it",
        description="Run COMMAND with leakwatch started inside every Python process it starts "
        "(through a sitecustomize on PYTHONPATH), configured from LEAKWATCH_* and -o options. "
        "When the program ends, its last suspects are printed on stderr.",
        usage="leakwatch run [-o NAME=VALUE]... [--report FILE] [--quiet] -- COMMAND [ARGS...]",
    )
    run.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an option, as LEAKWATCH_NAME=VALUE would (repeatable)",
    )
    run.add_argument("--report", metavar="FILE", help="also keep the last report there as JSON")
    run.add_argument("--quiet", action="store_true", help="do not print the suspects when the program ends")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND", help="the program and its arguments")

    serve = sub.add_parser(
        "serve",
        help="serve the reports that workers publish into a directory, under one endpoint",
        description="Serve /metrics and /api/suspects for every live worker that publishes into DIR (workers "
        "started with LEAKWATCH_WORKERS_DIR=DIR, e.g. uWSGI's), each series labelled worker; until stopped.",
    )
    serve.add_argument("--workers-dir", required=True, metavar="DIR", help="the directory the workers publish into")
    serve.add_argument(
        "--port", type=_port, default=SUGGESTED_PORT, metavar="PORT", help=f"port to serve on (default {SUGGESTED_PORT})"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")

    graph = sub.add_parser(
        "graph",
        help="fetch who holds a leak from a running process's /api/graph",
        description="Ask a process that runs leakwatch with graphs=true for the retention paths of a suspect, "
        "a type or an allocation site, and print them or save them as JSON, DOT or SVG "
        "(the format follows the -o file's extension).",
    )
    graph.add_argument("--url", required=True, help="the process's leakwatch server, e.g. http://127.0.0.1:10464")
    target = graph.add_mutually_exclusive_group(required=True)
    target.add_argument("--suspect", metavar="ID", help="a suspect id, as /api/suspects lists them")
    target.add_argument("--type", metavar="NAME", help="a type name, e.g. app.models.Session")
    target.add_argument("--site", metavar="FILE:LINE", help="an allocation site, e.g. /srv/app/views.py:42 (while traced)")
    graph.add_argument("-o", "--output", metavar="FILE", help="write the graph there (.json, .dot or .svg); default: print paths")
    graph.add_argument("--samples", type=int, default=8, help="instances to trace (1-32, default 8)")
    graph.add_argument(
        "--token-env",
        metavar="VAR",
        default="LEAKWATCH_GRAPH_TOKEN",
        help="environment variable holding the bearer token, if the server wants one (default LEAKWATCH_GRAPH_TOKEN)",
    )

    snap = sub.add_parser(
        "snapshot",
        help="save a running process's memory (census, sites, process memory, suspects) for leakwatch diff",
        description="GET a running process's /api/snapshot and save it as JSON: every type's live objects, "
        "the live bytes per site while traced, process memory and the suspects with their retained sizes.",
    )
    snap.add_argument("--url", required=True, help="the process's leakwatch server, e.g. http://127.0.0.1:10464")
    snap.add_argument("-o", "--output", required=True, metavar="FILE", help="the snapshot file to write")

    diff = sub.add_parser(
        "diff",
        help="what grew between two snapshots",
        description="Print the types and sites that grew from snapshot BEFORE to snapshot AFTER (largest first), "
        "with counts, bytes and retained sizes where the later snapshot knew them, and the change of process memory.",
    )
    diff.add_argument("before", metavar="BEFORE", help="the earlier snapshot file")
    diff.add_argument("after", metavar="AFTER", help="the later snapshot file")
    diff.add_argument("--top", type=int, default=20, metavar="N", help="types and sites to show of each (default 20)")

    sub.add_parser(
        "options",
        help="list every option, its environment variable and default",
        description="List every option with its LEAKWATCH_* environment variable, default and meaning.",
    )
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (see the parser's epilog)."""
    out = out or sys.stdout
    try:
        code = _dispatch(argv, out)
        out.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except CLIError as e:
        print(f"leakwatch: error: {e}", file=sys.stderr)
        return e.exit_code
    except ConfigError as e:
        print(f"leakwatch: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`leakwatch options | head -1`): stop quietly, as Unix tools do,
        # and keep the interpreter's last flush of stdout from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return PIPE_CLOSED


def _dispatch(argv: Sequence[str] | None, out: TextIO) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, printed
        return e.code if isinstance(e.code, int) else 0
    if args.version:
        from leakwatch._version import __version__

        print(f"leakwatch {__version__}", file=out)
        return 0
    if args.command == "demo":
        return run_demo(args.duration, args.interval, out, args.port)
    if args.command == "run":
        return run_program(args.argv, args.option, args.report, args.quiet)
    if args.command == "options":
        return print_options(out)
    if args.command == "graph":
        return fetch_graph(args, out)
    if args.command == "serve":
        return serve_workers(args.workers_dir, args.host, args.port, out)
    if args.command == "snapshot":
        return fetch_snapshot(args.url, args.output, out)
    if args.command == "diff":
        return print_diff(args.before, args.after, args.top, out)
    build_parser().print_help(out)
    return 2


# --- leakwatch graph ---------------------------------------------------------------------------

GRAPH_FORMATS = {".json": "json", ".dot": "dot", ".gv": "dot", ".svg": "svg"}


def fetch_graph(args: argparse.Namespace, out: TextIO) -> int:
    """GET /api/graph and print the paths, or save the graph in the format -o's extension names."""
    import urllib.parse

    fmt = "json"
    if args.output:
        ext = os.path.splitext(args.output)[1].lower()
        if ext not in GRAPH_FORMATS:
            raise CLIError(f"-o {args.output!r}: the file must end in {', '.join(GRAPH_FORMATS)}")
        fmt = GRAPH_FORMATS[ext]
    query = {"suspect": args.suspect} if args.suspect else {"type": args.type} if args.type else {"site": args.site}
    query.update(format=fmt, samples=str(args.samples))
    token = os.environ.get(args.token_env, "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = _get(args.url, "/api/graph?" + urllib.parse.urlencode(query), headers)
    if args.output:
        _save(args.output, body)
        print(f"wrote {args.output}", file=out)
        return 0
    graph = json.loads(body)
    print(f"{graph['target']}: {graph['instances']} live, {graph['sampled']} traced", file=out)
    for path in graph["paths"]:
        print(f"  x{path['count']} [{path['signature']}] {path['text']}", file=out)
    if not graph.get("complete", True):
        print("  (the search stopped at its depth or time budget; some instances are not traced)", file=out)
    return 0


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    """GET `path` of a leakwatch server at `url`; `CLIError` saying what went wrong."""
    import urllib.error
    import urllib.parse
    import urllib.request

    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CLIError(f"--url {url!r}: expected http://HOST:PORT")
    try:
        with urllib.request.urlopen(urllib.request.Request(url.rstrip("/") + path, headers=headers or {}), timeout=120) as r:
            body: bytes = r.read()
    except urllib.error.HTTPError as e:
        raise CLIError(f"{url} answered {e.code}: {e.read().decode(errors='replace').strip()[:300]}", 1) from None
    except (urllib.error.URLError, OSError) as e:
        raise CLIError(f"cannot reach {url}: {getattr(e, 'reason', e)}", 1) from None
    return body


def _save(path: str, body: bytes) -> None:
    try:
        write_atomically(path, body)
    except OSError as e:
        raise CLIError(f"cannot write {path!r}: {e.strerror or e}", 1) from None


# --- leakwatch snapshot and diff --------------------------------------------------------------


def fetch_snapshot(url: str, output: str, out: TextIO) -> int:
    """GET /api/snapshot and save it."""
    body = _get(url, "/api/snapshot")
    _save(output, body)
    doc = json.loads(body)
    print(f"wrote {output}: {len(doc.get('types', {}))} types, {len(doc.get('suspects', []))} suspects", file=out)
    return 0


def print_diff(before: str, after: str, top: int, out: TextIO) -> int:
    from leakwatch import snapshots

    if top < 1:
        raise CLIError(f"--top {top}: expected 1 or more", 2)
    try:
        a, b = snapshots.load(before), snapshots.load(after)
    except LeakwatchError as e:
        raise CLIError(str(e), 1) from None
    grown, process = snapshots.diff(a, b, top)
    out.write(snapshots.format_diff(grown, process, float(b.get("time", 0)) - float(a.get("time", 0))))
    return 0


# --- leakwatch serve ---------------------------------------------------------------------------


def serve_workers(directory: str, host: str, port: int, out: TextIO) -> int:
    """Serve the workers publishing into `directory` until SIGINT or SIGTERM."""
    from leakwatch.watcher import Watcher

    watcher = Watcher(prefork="master", workers_dir=directory, host=host, port=port)
    watcher.start()
    if watcher.server_address is None:
        watcher.stop()
        raise CLIError(f"cannot serve on {host} port {port} (see the log above)", 1)
    shown_host, bound = watcher.server_address
    print(f"serving the workers in {watcher.workers_dir} on http://{shown_host}:{bound}/metrics", file=out, flush=True)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        watcher.stop()
    return 0


# --- leakwatch options -------------------------------------------------------------------------


def print_options(out: TextIO) -> int:
    for opt in OPTIONS:
        print(f"{opt.env:<32} {opt.name} = {opt.default!r}", file=out)
        print(f"    {opt.help} Allowed: {opt.allowed()}.", file=out)
    return 0


# --- leakwatch run -----------------------------------------------------------------------------


def run_program(argv: Sequence[str], options: Sequence[str], report: str | None, quiet: bool) -> int:
    command = list(argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CLIError("run needs a command after '--', for example: leakwatch run -- python app.py")
    env = dict(os.environ)
    env.update(_option_env(options))
    if report:
        _remove(report)
    if not quiet:
        _say_when_a_verdict_can_come(Config.from_options(env=env), sys.stderr)
    with tempfile.TemporaryDirectory(prefix="leakwatch-") as tmp:
        # Every Python process the command starts writes its own report, named by its pid.
        env["LEAKWATCH_REPORT_FILE"] = os.path.join(tmp, "report-{pid}.json")
        # Once on the path, however deep `leakwatch run` nests.
        inherited = [
            p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.realpath(p) != os.path.realpath(BOOTSTRAP_DIR)
        ]
        env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *inherited])
        pid, code = _spawn(command, env)
        reports = _load_reports(tmp)
    main_pid = pid if pid in reports else max(reports, key=lambda p: reports[p].samples, default=None)
    if report and main_pid is not None:
        try:
            write_atomically(report, json.dumps(reports[main_pid].to_dict(), indent=2))
        except OSError as e:
            print(f"leakwatch: cannot write the report to {report!r}: {e.strerror or e}", file=sys.stderr)
    if not quiet:
        _print_reports(reports, main_pid, sys.stderr)
    return code


def _say_when_a_verdict_can_come(config: Config, out: TextIO) -> None:
    """Before the program starts: how long until leakwatch can name a leak, so silence is not read as a verdict."""
    from leakwatch.detector import Params, time_to_verdict

    params = Params(window=config.window, warmup=config.warmup)
    needs = time_to_verdict(params, config.interval)
    print(
        f"leakwatch: sampling every {config.interval:g} s; a steady leak can be named after about {seconds(needs)} "
        f"(warm-up {config.warmup:g} s, then a window of {config.window:g} s)",
        file=out,
        flush=True,
    )


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise CLIError(f"cannot replace the report file {path!r}: {e.strerror or e}") from None


def _load_reports(folder: str) -> dict[int, Report]:
    reports: dict[int, Report] = {}
    for name in os.listdir(folder):
        m = re.fullmatch(r"report-(\d+)\.json", name)
        if not m:
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                reports[int(m.group(1))] = Report.from_dict(json.load(f))
        except (OSError, ValueError):
            continue
    return reports


def _option_env(options: Sequence[str]) -> dict[str, str]:
    by_name = {o.name: o for o in OPTIONS}
    env: dict[str, str] = {}
    for item in options:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_").lower()
        if not sep or name not in by_name:
            raise CLIError(f"-o expects NAME=VALUE with NAME one of {', '.join(by_name)}; got {item!r}")
        try:
            parse_text(by_name[name], value)
        except (ValueError, ConfigError):
            raise CLIError(f"-o {item!r}: allowed: {by_name[name].allowed()}") from None
        env[by_name[name].env] = value
    return env


def _spawn(command: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Run the command to its end; return its pid and exit code (128+N if killed by signal N)."""
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as e:
        raise CLIError(f"cannot run {command[0]!r}: {e.strerror or e}", exit_code=127) from None

    def forward(signum: int, _frame: object) -> None:
        # Ctrl-C already reached the child through the terminal's process group; forward
        # only a signal sent to this process alone.
        if signum != signal.SIGINT or not _in_terminal_foreground():
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return proc.pid, 128 - code if code < 0 else code


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def _print_reports(reports: dict[int, Report], main_pid: int | None, out: TextIO) -> None:
    order = sorted(reports, key=lambda p: (p != main_pid, p))
    for pid in order:
        report = reports[pid]
        who = "" if len(reports) == 1 else f" [pid {pid}]"
        print(f"leakwatch{who}: {report.summary()}{':' if report.suspects else ''}", file=out)
        for s in report.suspects:
            print(f"  {s.describe()}", file=out)


# --- leakwatch demo ----------------------------------------------------------------------------


def run_demo(duration: float, interval: float, out: TextIO, port: int | None = None) -> int:
    from leakwatch.demo import CACHE_SIZE, DemoService
    from leakwatch.watcher import Watcher

    config = Config.from_options(
        interval=interval,
        warmup=max(3.0, 8 * interval),
        window=max(10.0, 40 * interval),
        trace_window=max(6.0, 24 * interval),
        min_growth_bytes=256 * 1024,
        # Four samples a second cost more than the 1% a service would give: the demo plays
        # hours in seconds, and says what it spends.
        cpu_budget=0.25,
        log_suspects=False,
        port=port,
    )
    print(f"leakwatch demo: a service that leaks Session objects and keeps an LRU cache of {CACHE_SIZE} entries.", file=out)
    print(
        f"Sampling every {config.interval:g} s (CPU budget {100 * config.cpu_budget:g}% of a core); "
        f"warm-up {config.warmup:g} s, window {config.window:g} s. "
        f"Stops after {duration:g} s or on Ctrl-C.",
        file=out,
        flush=True,
    )
    watcher = Watcher(config).start()
    if port is not None:
        if watcher.server_address is None:
            watcher.stop()
            raise CLIError(f"cannot serve on 127.0.0.1 port {port} (in use?); --port 0 picks a free port")
        host, bound = watcher.server_address
        print(f"Serving http://{host}:{bound}/metrics and http://{host}:{bound}/api/suspects", file=out, flush=True)
    service = DemoService().start()
    start = time.monotonic()
    shown: dict[str, Suspect] = {}
    try:
        while time.monotonic() - start < duration:
            time.sleep(0.25)
            _show_changes(watcher.suspects(), shown, time.monotonic() - start, out)
    except KeyboardInterrupt:
        print("interrupted", file=out)
    finally:
        watcher.stop()
        service.stop()
    report = watcher.report()
    print(
        f"after {time.monotonic() - start:.0f} s: {service.handled} requests, {len(service.sessions)} sessions kept, "
        f"cache {len(service.cache)}/{CACHE_SIZE}; {report.samples} samples",
        file=out,
    )
    print(f"leakwatch: {report.summary()}", file=out)
    for s in report.suspects:
        print(f"  still suspected: {s.describe()}", file=out)
    return 0


def _show_changes(current: list[Suspect], shown: dict[str, Suspect], elapsed: float, out: TextIO) -> None:
    now = {s.id: s for s in current}
    for sid, s in now.items():
        if sid not in shown:
            print(f"[{elapsed:5.1f}s] LEAK SUSPECTED  {s.describe()}", file=out, flush=True)
    for sid, s in shown.items():
        if sid not in now:
            print(f"[{elapsed:5.1f}s] cleared         {s.kind} {s.key}", file=out, flush=True)
    shown.clear()
    shown.update(now)
