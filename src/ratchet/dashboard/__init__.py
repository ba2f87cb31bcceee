"""A small read-only web dashboard over the metadata store, server-rendered.

    app = create_app(load_config())   # then uvicorn, as `ratchet dashboard` does

The modules: `view` (what each page holds, read through the capabilities' own
queries, as JSON-ready dicts), `markup` (the same as plain escaped HTML, no
JavaScript, nothing fetched) and `app` (the routes, each page also JSON, the
store opened per request, errors as HTTP statuses). It writes nothing of its
own; the command that serves it is `ratchet.cli.dashboard`.
"""

from ratchet.dashboard.app import create_app

__all__ = ["create_app"]
