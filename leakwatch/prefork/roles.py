"""Which part a process plays in a pre-forking server: "master", "worker" or "single"."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import psutil

from leakwatch.config import Config
from leakwatch.prefork.slots import MASTER_FILE

# Command lines of pre-forking masters that `prefork="auto"` recognises: gunicorn always, and
# these with more than one worker.
MASTER_PROGRAMS = ("gunicorn",)
WORKERS_PROGRAMS = ("uvicorn", "fastapi")
# A gunicorn master's title when setproctitle is installed ("gunicorn: master [app:app]").
RENAMED_MASTER = "gunicorn: master"
# How multiprocessing starts its helper processes (`python -c "<this>..."`).
HELPER_CODE = ("from multiprocessing.resource_tracker import", "from multiprocessing.forkserver import")


def is_prefork_master(orig_argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> bool:
    """Whether a command line (`sys.orig_argv` by default: the interpreter's own, which is whole
    even while `site` runs) is a pre-forking master that forks or spawns its workers in Python:
    gunicorn (any worker class; also as setproctitle renames it), or uvicorn and `fastapi run`
    with more than one worker (`--workers N`, or `WEB_CONCURRENCY`, which both read)."""
    argv = list(orig_argv or getattr(sys, "orig_argv", ()) or ())
    if argv and argv[0].startswith(RENAMED_MASTER):
        return True
    program, args = program_of(argv)
    if program in MASTER_PROGRAMS:
        return True
    if program not in WORKERS_PROGRAMS:
        return False
    env = os.environ if environ is None else environ
    return _workers(args, env.get("WEB_CONCURRENCY", "")) > 1


def _workers(args: Sequence[str], default: str) -> int:
    """The worker count of a uvicorn or fastapi command line (`--workers N` or `--workers=N`)."""
    given = default
    for i, arg in enumerate(args):
        if arg == "--workers" and i + 1 < len(args):
            given = args[i + 1]
        elif arg.startswith("--workers="):
            given = arg.partition("=")[2]
    return int(given) if given.strip().isdigit() else 1


def is_helper_process(orig_argv: Sequence[str] = ()) -> bool:
    """Whether this is one of multiprocessing's own helpers (its resource tracker or fork
    server), which run none of the application's code: leakwatch stays out of them."""
    argv = list(orig_argv or getattr(sys, "orig_argv", ()) or ())
    return "-c" in argv[:-1] and argv[argv.index("-c") + 1].startswith(HELPER_CODE)


def program_of(orig_argv: list[str]) -> tuple[str, list[str]]:
    """(program, its arguments) from an interpreter command line: the module of `-m`, or the
    script's name ("" for `-c` or none)."""
    args = orig_argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m" and i + 1 < len(args):
            return args[i + 1].split(".")[0], args[i + 2 :]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:].split(".")[0], args[i + 1 :]
        if arg == "-c" or arg.startswith("-c"):
            return "", []
        if arg in ("-X", "-W", "--check-hash-based-pycs"):
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1
            continue
        return os.path.basename(arg), args[i + 1 :]
    return "", []


def role(
    config: Config,
    orig_argv: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    parent: Sequence[str] | None = None,
) -> str:
    """This process's part, from the config, its command line and its parent process:

    - "master": a pre-forking master; it serves its workers' reports and samples nothing;
    - "worker": it samples and publishes into `workers_dir`, which its master (or
      `leakwatch serve`) serves;
    - "sibling": a worker of a master that runs no leakwatch (the app starts leakwatch on import,
      under gunicorn without --preload or uvicorn --workers): it samples and publishes into a
      directory its siblings share, and whichever of them binds the port serves them all;
    - "single": it samples and serves here.

    `orig_argv`, `environ` and `parent` (the parent's command line) default to this process's.
    """
    env = os.environ if environ is None else environ

    def parent_is_master() -> bool:
        return is_prefork_master(parent_argv() if parent is None else parent, env)

    if config.prefork == "master":
        return "master"
    auto = config.prefork == "auto"
    # A gunicorn master re-executed by USR2 is its predecessor's child, with its environment
    # (workers_dir included), and GUNICORN_PID names the predecessor.
    reexecuted = env.get("GUNICORN_PID", "") == str(os.getppid())
    if auto and config.workers_dir and not reexecuted and directory_owner(config.workers_dir) == os.getppid():
        return "worker"
    if auto and is_prefork_master(orig_argv, env):
        # A worker forked by a master without leakwatch has its master's command line.
        return "sibling" if not reexecuted and parent_is_master() else "master"
    if config.workers_dir:
        return "worker"
    if auto and parent_is_master():
        return "sibling"  # spawned (uvicorn --workers) by a master without leakwatch
    return "single"


def parent_argv() -> list[str]:
    """The parent process's command line ([] when it cannot be read)."""
    try:
        argv: list[str] = psutil.Process(os.getppid()).cmdline()
    except (psutil.Error, OSError):
        return []
    return argv


def directory_owner(directory: str) -> int:
    """The pid of the master that serves `directory` (0 when none is recorded)."""
    try:
        with open(os.path.join(directory, MASTER_FILE), encoding="utf-8") as f:
            return int(f.read(20).strip() or 0)
    except (OSError, ValueError):
        return 0
