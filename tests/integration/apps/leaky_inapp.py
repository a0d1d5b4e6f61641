"""The leaky WSGI app with leakwatch started by the app itself on import, as the in-app recipes
do (a Django AppConfig.ready(), a Flask app factory): under a pre-forking server without
--preload it starts in each worker, after the fork, and the master runs no leakwatch."""

from __future__ import annotations

from leaky_wsgi import Session, app

import leakwatch

__all__ = ["Session", "app"]

leakwatch.start()  # options from LEAKWATCH_*: the port among them
