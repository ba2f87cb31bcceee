"""The `ratchet` command line: one Typer app, errors mapped to exit codes and one line each.

Owns the root options (where the stores are), the mapping from ratchet's errors
to exit codes, and the registration of the command groups, which live in the
sibling modules (`records`, `store`, `pipeline`, `data`, `demo`). Results go to stdout, errors and
logs to stderr; no user mistake ever shows a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ratchet.cli import data, demo, formalize, models, pipeline, records, serve, store, tune
from ratchet.cli.baseline import baseline as baseline_command
from ratchet.cli.dashboard import dashboard_command
from ratchet.cli.experiment import experiment_command
from ratchet.cli.output import error_console
from ratchet.config import load_config
from ratchet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RatchetError,
    StoreError,
)

app = typer.Typer(
    name="ratchet",
    help="Local-first MLOps: pipelines that keep producing better candidate models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_CODES: tuple[tuple[type[RatchetError], int], ...] = (
    (InvalidArgument, 2),
    (NotFound, 3),
    (AlreadyExists, 4),
    (FailedPrecondition, 5),
    (StoreError, 6),
    (RatchetError, 1),
)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Folder of the embedded store [env: RATCHET_HOME].")
    ] = None,
    db_url: Annotated[
        str | None, typer.Option(help="Metadata store URL [env: RATCHET_DB_URL].")
    ] = None,
    artifact_url: Annotated[
        str | None,
        typer.Option(help="Artifact store folder or fsspec URL [env: RATCHET_ARTIFACT_URL]."),
    ] = None,
) -> None:
    """Read the configuration once, here at the edge, and hand it to the commands."""
    ctx.obj = load_config(home=home, db_url=db_url, artifact_url=artifact_url)


records.register(app)
serve.register(app)
app.add_typer(store.app, name="store")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(tune.app, name="tune")
app.add_typer(formalize.app, name="formalize")
app.command("watch")(formalize.watch_command)
app.command("experiment")(experiment_command)
app.command("demo")(demo.demo)
app.command("baseline")(baseline_command)
app.command("dashboard")(dashboard_command)


def exit_code(error: RatchetError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def main() -> None:
    """Console entry point: run the app, turning ratchet errors into one line and an exit code."""
    try:
        # Not standalone: usage mistakes come back here instead of as a multi-line box.
        app(standalone_mode=False)
    except typer.Abort:
        error_console().print("aborted", markup=False)
        sys.exit(1)
    except typer.TyperException as e:
        format_message = getattr(e, "format_message", None)
        message = format_message() if callable(format_message) else str(e)
        error_console().print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except RatchetError as e:
        error_console().print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exit_code(e))
    except KeyboardInterrupt:
        error_console().print("interrupted", markup=False)
        sys.exit(130)
