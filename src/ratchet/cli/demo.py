"""`ratchet demo`: the main job, with a progress bar, then what it recorded."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ratchet.artifacts import ArtifactStore
from ratchet.cli.output import console, frame_rows, print_table
from ratchet.config import Config
from ratchet.demo import run_demo
from ratchet.errors import InvalidArgument
from ratchet.metadata import MetadataStore
from ratchet.tracking import tracker


def demo(
    ctx: typer.Context,
    epochs: Annotated[int, typer.Option(help="Training epochs per run.")] = 60,
    learning_rates: Annotated[
        str, typer.Option(help="Comma-separated learning rates, one run each.")
    ] = "0.01,0.1,0.5",
) -> None:
    """Run a small experiment end to end and show what the store recorded."""
    config: Config = ctx.obj
    try:
        rates = [float(v) for v in learning_rates.split(",") if v.strip()]
    except ValueError as e:
        raise InvalidArgument(f"--learning-rates must be numbers separated by commas: {e}") from e
    if not rates or epochs < 1:
        raise InvalidArgument("give at least one learning rate and one epoch")
    with MetadataStore.from_config(config) as store:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(),
            transient=False,
        ) as progress:
            task = progress.add_task("training demo runs", total=epochs * len(rates))
            result = run_demo(
                store,
                ArtifactStore.from_config(config),
                run_root=config.home / "runs",
                learning_rates=rates,
                epochs=epochs,
                on_step=lambda: progress.advance(task),
            )
        frame = tracker.experiment_df(store, result.experiment)
    latest = frame[frame["run_name"].isin(result.runs)]
    columns = [
        "run_name",
        "state",
        "param.learning_rate",
        "metric.val_log_loss",
        "metric.val_accuracy",
    ]
    print_table(frame_rows(latest), title=f"experiment {result.experiment!r}", columns=columns)
    out = console()
    out.print(f"best run: [bold]{result.best_run}[/] (val_log_loss {result.best_log_loss:.4f})")
    out.print(f"store: {config.db_url}")
    out.print("next:")
    for command in (
        f"ratchet runs show {result.experiment}/{result.best_run}",
        f"ratchet lineage {result.metrics_artifact_id}",
        "ratchet runs compare " + " ".join(f"{result.experiment}/{r}" for r in result.runs),
        f"tensorboard --logdir {config.home / 'runs' / result.experiment}",
    ):
        out.print(f"  {command}", markup=False, highlight=False)
