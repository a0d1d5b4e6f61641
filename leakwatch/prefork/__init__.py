"""Pre-forking servers (gunicorn, uvicorn --workers, uWSGI): the one place that knows masters
and workers.

Every worker samples itself and publishes its report into a directory the master shares with
it; the master samples nothing and serves them all, each series labelled `worker="<slot>"`.

- `roles`: which part this process plays ("master", "worker" or "single").
- `slots`: the shared directory, each worker's slot and published report.
- `member`: one watcher's part in it (claims, publishes, serves, survives fork).
- `merge`: a master's view of its workers' reports, for the exporter, the API and the page.
"""
