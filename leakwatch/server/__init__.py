"""leakwatch over HTTP: `/metrics`, `/api/suspects`, `/api/graph` and the page at `/`.

- `endpoints`: what each path answers (one routing function for every way of serving).
- `apps`: the WSGI and ASGI apps to mount under a web application.
- `standalone`: a small server of leakwatch's own (the `port` option).
- `page`: the HTML page at `/`.
"""
