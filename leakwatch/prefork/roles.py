"""Which part a process plays in a pre-forking server: "master", "worker" or "single"."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from leakwatch.config import Config

# Command lines of pre-forking masters that `prefork="auto"` recognises.
MASTER_PROGRAMS = ("gunicorn",)
# How multiprocessing starts its helper processes (`python -c "<this>..."`).
HELPER_CODE = ("from multiprocessing.resource_tracker import", "from multiprocessing.forkserver import")


def is_prefork_master(orig_argv: Sequence[str] = ()) -> bool:
    """Whether this process's command line (`sys.orig_argv`: the interpreter's own, which is
    whole even while `site` runs) is a pre-forking master that forks or spawns its workers in
    Python: gunicorn (any worker class), or uvicorn with --workers."""
    program, args = program_of(list(orig_argv or getattr(sys, "orig_argv", ()) or ()))
    if program in MASTER_PROGRAMS:
        return True
    return program == "uvicorn" and any(a == "--workers" or a.startswith("--workers=") for a in args)


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


def role(config: Config, orig_argv: Sequence[str] = ()) -> str:
    """ "master" (serve the workers' reports, sample nothing), "worker" (sample and publish into
    `workers_dir`) or "single" (sample and serve here), from the config and the command line."""
    # The master test comes first: a gunicorn master re-executed by USR2 inherits the
    # environment, workers_dir included, of the master before it.
    if config.prefork == "master" or (config.prefork == "auto" and is_prefork_master(orig_argv)):
        return "master"
    if config.workers_dir:
        return "worker"
    return "single"
