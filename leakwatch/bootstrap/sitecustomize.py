"""Put on PYTHONPATH by `leakwatch run`: starts leakwatch inside the program, then chains to
any other `sitecustomize` further down sys.path. Never lets an error reach the host."""

from __future__ import annotations


def _bootstrap() -> None:
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        ours = sys.modules.get("sitecustomize")
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        try:
            spec.loader.exec_module(module)
        finally:
            # site.py is importing us under this name; leave the entry it expects.
            if ours is not None:
                sys.modules["sitecustomize"] = ours
    import leakwatch.auto  # noqa: F401  (starts the watcher)


try:
    _bootstrap()
except Exception:  # the host must run even if leakwatch cannot
    import logging

    logging.getLogger("leakwatch").warning("leakwatch: bootstrap failed; running without it", exc_info=True)
