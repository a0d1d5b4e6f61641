"""The leaky ASGI app with leakwatch started by the app itself on import: under uvicorn
--workers the supervisor never imports it, and each spawned worker starts leakwatch."""

from __future__ import annotations

from leaky_asgi import Session, app

import leakwatch

__all__ = ["Session", "app"]

leakwatch.start()  # options from LEAKWATCH_*: the port among them
