"""Put on PYTHONPATH by `leakwatch run`: starts leakwatch inside the program, then chains to
any other `sitecustomize` further down sys.path. Never lets an error reach the host."""

from __future__ import annotations


def _chain() -> None:
    """Run the sitecustomize this one shadows, as if it had been imported directly."""
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    rest = [p for p in sys.path if os.path.realpath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or spec.origin is None:
        return
    if os.path.realpath(os.path.dirname(spec.origin)) == here:
        return
    ours = sys.modules.get("sitecustomize")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        # site.py is importing us under this name; leave the entry it expects.
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        sys.modules.setdefault("_leakwatch_chained_sitecustomize", module)


def _start() -> None:
    try:
        import leakwatch.auto  # noqa: F401  (starts the watcher)
    except ModuleNotFoundError:
        # A Python without leakwatch installed (another venv, the system one) runs on quietly.
        return


try:
    _chain()
except Exception:
    import traceback

    # The program's own sitecustomize failed: report it as Python itself would, then go on.
    traceback.print_exc()
try:
    _start()
except Exception:  # the host must run even if leakwatch cannot
    import logging

    logging.getLogger("leakwatch").warning("leakwatch: bootstrap failed; running without it", exc_info=True)
