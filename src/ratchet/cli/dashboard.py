"""`ratchet dashboard`: the read-only web dashboard, served until interrupted.

Owns checking the store before anything listens (a missing or too new store is
one line of error), binding the socket here as `ratchet serve` does (a taken port
is one line of error, `--port 0` picks a free one), printing the URL and running
uvicorn. The pages are `ratchet.dashboard`'s.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ratchet.cli.context import existing_store
from ratchet.cli.output import console
from ratchet.cli.serve import listen, run_server
from ratchet.config import Config
from ratchet.dashboard import create_app


def dashboard_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8765,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve a read-only dashboard of models, formalization passes, lineage and experiments."""
    config: Config = ctx.obj
    with existing_store(ctx):
        pass  # opened once here, migrating; the app then opens it per request as it is
    app = create_app(config)
    listener = listen(host, port)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    console().print(
        f"dashboard on http://{shown}:{bound} (JSON under /api)", markup=False, highlight=False
    )
    run_server(app, listener, access_log=access_log)
