"""`ratchet predict` and `ratchet serve`: batch and online prediction from the shell.

Owns reading MODEL arguments (a bundle folder, or a registry reference looked up in
the configured stores, which are closed again once the bundles are loaded), the
parsing of `--split`, the progress bar of a batch run, and starting uvicorn on a
socket bound here, so a taken port is one line of error and `--port 0` picks a free
port and prints it. Prediction is `ratchet.prediction`; the app is `ratchet.serving`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ratchet.artifacts import ArtifactStore
from ratchet.cli.context import existing_store
from ratchet.cli.output import console, error_console, print_json
from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.prediction import BATCH_ROWS, input_rows, predict_file
from ratchet.registry import Registry
from ratchet.serving import Limits, create_app, is_bundle_path, load_model, load_routes

ModelArgument = Annotated[
    str,
    typer.Argument(
        help="A registered model (name, name@VERSION, name:ALIAS) or a bundle folder.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
    app.command("serve")(serve_command)


@contextmanager
def _registry(ctx: typer.Context, references: list[str]) -> Iterator[Registry | None]:
    """The registry, opened only when some reference is not a bundle folder."""
    if all(is_bundle_path(r) for r in references):
        yield None
        return
    with existing_store(ctx) as store:
        yield Registry(store, ArtifactStore.from_config(ctx.obj))


def predict_command(
    ctx: typer.Context,
    model: ModelArgument,
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="A .jsonl, .parquet or .csv file of records.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The predictions: .parquet, .csv or .jsonl.")
    ],
    errors: Annotated[
        Path | None,
        typer.Option(help="Where malformed rows go [default: OUT's stem + .errors.jsonl]."),
    ] = None,
    batch_rows: Annotated[int, typer.Option(help="Rows predicted at once.")] = BATCH_ROWS,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Predict every record of INPUT; malformed rows go to an errors file with line numbers."""
    with _registry(ctx, [model]) as registry:
        route = load_model(model, registry)
    stderr = error_console()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,  # piped stderr keeps to its one line per error
    ) as progress:
        task = progress.add_task(f"predict {input_path.name}", total=input_rows(input_path))
        summary = predict_file(
            route.bundle,
            input_path,
            output,
            errors_path=errors,
            batch_rows=batch_rows,
            on_rows=lambda rows: progress.advance(task, rows),
        )
    if as_json:
        print_json(
            {
                "model": route.name,
                "rows": summary.rows,
                "predicted": summary.predicted,
                "malformed": summary.malformed,
                "output": str(summary.output),
                "errors": str(summary.errors) if summary.errors else None,
                "seconds": summary.seconds,
            }
        )
    else:
        rate = summary.rows / summary.seconds if summary.seconds else 0.0
        console().print(
            f"predicted {summary.predicted:,} of {summary.rows:,} rows with {route.name} "
            f"in {summary.seconds:.1f} s ({rate:,.0f} rows/s) -> {summary.output}",
            markup=False,
            highlight=False,
        )
    if summary.malformed:
        error_console().print(
            f"warning: {summary.malformed:,} malformed rows, with their line numbers and "
            f"reasons, are in {summary.errors}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def parse_split(model: str, split: list[str]) -> dict[str, float]:
    """MODEL's share (what the REF=SHARE pairs leave) and each pair's."""
    shares: dict[str, float] = {}
    for text in split:
        reference, sep, value = text.rpartition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not reference or not 0 < share < 1:
            raise InvalidArgument(
                f"--split {text!r} is malformed: use MODEL=SHARE with 0 < SHARE < 1, "
                "e.g. churn@4=0.1"
            )
        if reference == model or reference in shares:
            raise InvalidArgument(f"--split names {reference} twice")
        shares[reference] = share
    rest = 1.0 - sum(shares.values())
    if rest <= 1e-9:
        raise InvalidArgument(f"the --split shares add up to 1 or more, leaving none to {model}")
    return {model: rest, **shares}


def serve_command(
    ctx: typer.Context,
    model: ModelArgument,
    split: Annotated[
        list[str] | None,
        typer.Option(help="REF=SHARE: send that share of requests to REF, e.g. churn@4=0.1."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8000,
    max_records: Annotated[int, typer.Option(help="Records per request.")] = Limits.max_records,
    max_bytes: Annotated[int, typer.Option(help="Bytes per request body.")] = Limits.max_bytes,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    threads: Annotated[
        int, typer.Option(help="Threads one prediction may use (torch and OpenMP).")
    ] = 1,
) -> None:
    """Serve MODEL over HTTP: POST /predict, GET /health, GET /model, docs at /docs."""
    import torch

    if threads < 1:
        raise InvalidArgument(f"--threads must be at least 1, not {threads}")
    weights = parse_split(model, split or [])
    with _registry(ctx, list(weights)) as registry:
        routes = load_routes(weights, registry)
    app = create_app(routes, limits=Limits(max_records=max_records, max_bytes=max_bytes))
    listener = listen(host, port)
    bound = listener.getsockname()[1]
    # Requests come one at a time and small: spare threads only cost time, as after every
    # idle moment the OpenMP pool must be woken again (5-10 ms a request with LightGBM on
    # a busy 2-core machine, against 0.2 ms on one thread; torch shares the pool). Set
    # last, when nothing can fail any more: it holds for the whole process.
    torch.set_num_threads(threads)
    shares = ", ".join(f"{r.name} {r.weight:.0%}" for r in routes)
    console().print(
        f"serving {shares} on http://{host}:{bound} (docs at /docs)", markup=False, highlight=False
    )
    run_server(app, listener, access_log=access_log)


def run_server(app: Any, listener: socket.socket, *, access_log: bool) -> None:
    """Serve `app` on a bound `listener` until interrupted; a server that never started fails."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, access_log=access_log, log_level="info"))
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    if not server.started:
        raise FailedPrecondition("the server did not start; its log above says why")


def listen(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"--port must be between 0 and 65535, not {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then, and
    # without it Nagle and delayed ACKs add 40 ms to every answer.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as e:
        listener.close()
        raise FailedPrecondition(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    return listener
