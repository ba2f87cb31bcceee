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
from ratchet.formalize.demo import demo_settings, run_taxi_demo
from ratchet.metadata import MetadataStore
from ratchet.registry import Registry
from ratchet.tracking import tracker
from ratchet.tuning.results import find_hyperparameters


def demo(
    ctx: typer.Context,
    tracking_only: Annotated[
        bool, typer.Option(help="Only the quick experiment-tracking demo (seconds).")
    ] = False,
    epochs: Annotated[int, typer.Option(help="Tracking demo: training epochs per run.")] = 60,
    learning_rates: Annotated[
        str, typer.Option(help="Tracking demo: comma-separated learning rates, one run each.")
    ] = "0.01,0.1,0.5",
    max_trials: Annotated[int, typer.Option(help="Trials per tuning study.")] = 6,
    baseline_budget: Annotated[float, typer.Option(help="AutoML baseline seconds.")] = 10.0,
) -> None:
    """The main job: the taxi trips formalized and fed month by month (or --tracking-only)."""
    config: Config = ctx.obj
    if not tracking_only:
        _formalized(config, max_trials=max_trials, baseline_budget=baseline_budget)
        return
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


def _formalized(config: Config, *, max_trials: int, baseline_budget: float) -> None:
    if max_trials < 1 or baseline_budget <= 0:
        raise InvalidArgument("--max-trials must be >= 1 and --baseline-budget > 0")
    with MetadataStore.from_config(config):
        pass  # a store that cannot be opened or is too new is refused before any work
    out = console()
    settings = demo_settings(max_trials=max_trials, baseline_budget=baseline_budget)
    with out.status("formalizing the taxi trips, month by month") as status:

        def say(line: str) -> None:
            status.update(line[:100])
            out.print(f"  {line}", markup=False, highlight=False)

        results = run_taxi_demo(config, settings=settings, say=say)
    rows = [
        {
            "dataset": r.dataset.name,
            "decision": r.decision.action.value,
            "candidate": str(r.candidate or ""),
            "promoted": r.promoted,
            "gate": r.reasons[0] if r.reasons else "",
        }
        for r in results
    ]
    print_table(rows, title="formalization passes (nothing new: all months already passed)"
                if not rows else "formalization passes")  # fmt: skip
    with MetadataStore.from_config(config) as store:
        champion = Registry(store, ArtifactStore.from_config(config)).get("taxi:champion")
        studies = find_hyperparameters(store, model="taxi")
    out.print(f"store: {config.db_url}; champion: {champion}")
    out.print("next:")
    for command in (
        "ratchet dashboard",
        "ratchet models show taxi:champion",
        "ratchet models compare taxi:champion taxi-baseline:baseline",
        *(f"ratchet tune show {studies[0].properties['study']}" for _ in studies[:1]),
        f"ratchet lineage {champion.artifact_id}",
        f"tensorboard --logdir {config.home / 'runs'}",
    ):
        out.print(f"  {command}", markup=False, highlight=False)
