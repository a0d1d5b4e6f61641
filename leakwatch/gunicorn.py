"""A gunicorn config module that runs leakwatch in every worker and serves them all from the
master:

    gunicorn -c python:leakwatch.gunicorn app:app           # LEAKWATCH_PORT=10464 to serve

or, with a config file of your own, import its hook there:

    from leakwatch.gunicorn import on_starting  # noqa: F401  (in gunicorn.conf.py)

The master samples nothing: it serves `/metrics` and `/api/suspects` on `port` for every live
worker, labelled `worker="<slot>"`, and calls `gc.freeze()` before each fork (the `freeze`
option) so workers' censuses leave the preloaded heap's pages shared. Each worker starts
sampling as it is forked, `--preload` or not, and a recycled worker's slot (gunicorn's
`max_requests`) goes to the next one. Options come from `LEAKWATCH_*`, as everywhere.
`leakwatch run -- gunicorn ...` does the same with no config at all.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def on_starting(server: Any) -> None:
    """gunicorn's hook, in the master before it forks any worker: leakwatch as the pre-fork master."""
    try:
        from leakwatch.api import start

        start(prefork="master")
    except Exception:
        logger.warning("leakwatch: could not start in the gunicorn master; workers run without it", exc_info=True)
