"""``import leakwatch.auto`` starts the process-wide watcher from ``LEAKWATCH_*`` settings.

Never raises into the host: a failure is logged and swallowed.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def start_from_env() -> None:
    """Start the watcher configured only by the environment; log, never raise, on failure."""
    try:
        from leakwatch.api import start
        from leakwatch.prefork.roles import is_helper_process

        if is_helper_process():
            return
        start()
    except Exception:
        logger.warning("leakwatch: could not start from the environment; the program runs on without it", exc_info=True)


start_from_env()
