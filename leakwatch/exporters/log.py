"""The log exporter: one WARNING line when a suspect is confirmed, one INFO line when it clears
(the `log_suspects` option), on the `leakwatch.exporters.log` logger."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from leakwatch.model import Suspect

logger = logging.getLogger(__name__)


def log_changes(before: Sequence[Suspect], after: Sequence[Suspect]) -> None:
    """Log the suspects in `after` that `before` lacked, and those that left."""
    old = {s.id for s in before}
    new = {s.id for s in after}
    for s in after:
        if s.id not in old:
            logger.warning("leakwatch: suspected leak: %s", s.describe())
    for s in before:
        if s.id not in new:
            logger.info("leakwatch: no longer growing: %s %s", s.kind, s.key)
