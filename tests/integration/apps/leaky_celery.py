"""A Celery app with one leaking task, for the pre-fork pool: `leak` files Sessions in a module
list that is never pruned and returns the pool process's pid. Its broker is a directory
(kombu's filesystem transport, `LEAKY_CELERY_DIR`), so no broker server is needed."""

from __future__ import annotations

import os

from celery import Celery

folder = os.environ["LEAKY_CELERY_DIR"]
for sub in ("queue", "processed", "results", "control"):
    os.makedirs(os.path.join(folder, sub), exist_ok=True)

app = Celery("leaky_celery", broker="filesystem://", backend="file://" + os.path.join(folder, "results"))
app.conf.broker_transport_options = {
    "data_folder_in": os.path.join(folder, "queue"),
    "data_folder_out": os.path.join(folder, "queue"),
    "data_folder_processed": os.path.join(folder, "processed"),
    "control_folder": os.path.join(folder, "control"),
}
app.conf.broker_connection_retry_on_startup = True


class Session:
    def __init__(self, n: int) -> None:
        self.n = n
        self.payload = [n] * 4


_sessions: list[Session] = []


@app.task
def leak() -> int:
    _sessions.extend(Session(i) for i in range(20))
    return os.getpid()
