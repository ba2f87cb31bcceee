"""`ratchet baseline DATASET`: the AutoML baseline and its floor, trained and registered.

Owns finding DATASET (a registered dataset's newest version, or a prepared folder
and the Dataset version recorded for it), the progress bar over the time budget
and the table of what was registered. The search, the floor and the recording are
`ratchet.baseline`'s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, Task, TextColumn, TimeElapsedColumn
from rich.progress_bar import ProgressBar

from ratchet import datasets
from ratchet.artifacts import ArtifactStore
from ratchet.baseline import BaselineResult, record_baseline, run_baseline
from ratchet.cli.output import console, error_console, print_json, print_table
from ratchet.config import Config
from ratchet.errors import NotFound
from ratchet.metadata import Artifact, MetadataStore
from ratchet.registry import ModelVersion, Registry


class _BudgetBar(BarColumn):
    """Fills with the time spent against the budget: FLAML reports no progress of its own."""

    def render(self, task: Task) -> ProgressBar:
        total = task.total or 1.0
        return ProgressBar(
            total=total,
            completed=min(task.elapsed or 0.0, total),
            width=None if self.bar_width is None else max(1, self.bar_width),
            animation_time=task.get_time(),
            style=self.style,
            complete_style=self.complete_style,
            finished_style=self.finished_style,
            pulse_style=self.pulse_style,
        )


def _resolve(store: MetadataStore, value: str) -> tuple[Path, Artifact | None, str]:
    """The dataset folder, its recorded Dataset version (if any) and the dataset's name."""
    folder = Path(value)
    if folder.is_dir():
        for uri in dict.fromkeys((str(folder), str(folder.absolute()), str(folder.resolve()))):
            found = store.find_artifacts(type=datasets.DATASET, uri=uri, newest_first=True)
            if found:
                return folder, found[0], str(found[0].properties.get("name") or folder.name)
        return folder, None, folder.name
    versions = datasets.find_versions(store, value)
    if not versions:
        raise NotFound(f"no dataset folder or registered dataset {value!r}")
    return Path(versions[0].uri), versions[0], value


def _rows(result: BaselineResult, versions: list[ModelVersion]) -> list[dict[str, Any]]:
    shown = dict.fromkeys((result.metric, "accuracy" if result.task.classification else "rmse"))
    rows = []
    for model, version in zip(result.models, versions, strict=True):
        row: dict[str, Any] = {
            "model": str(version),
            "kind": model.kind,
            "estimator": model.estimator,
        }
        for metric in shown:
            for split in ("validation", "test"):
                row[f"{split} {metric}"] = model.metrics.get(f"{split}_{metric}")
        row["aliases"] = ", ".join(version.aliases)
        rows.append(row)
    return rows


def baseline(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="A registered dataset's name, or a folder.")],
    budget: Annotated[float, typer.Option(help="Seconds FLAML may search.")] = 60,
    metric: Annotated[
        str | None,
        typer.Option(
            help="log_loss (default), roc_auc, pr_auc, accuracy, f1; or rmse (default), mae, r2."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the search and the floor.")] = 0,
    n_jobs: Annotated[int, typer.Option(help="Threads per trial; -1 uses every core.")] = -1,
    estimator: Annotated[
        list[str] | None,
        typer.Option(help="A FLAML estimator to search (repeat): lgbm, xgboost, rf, ..."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Registered model name (default: DATASET-baseline).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Train the AutoML baseline and its floor on DATASET's split; register all three."""
    config: Config = ctx.obj
    with MetadataStore.from_config(config) as store:
        folder, recorded, dataset_name = _resolve(store, dataset)
    if recorded is None:
        error_console().print(
            f"warning: {folder} is not a registered dataset version: no lineage recorded",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    with tempfile.TemporaryDirectory(prefix="ratchet-baseline-") as scratch:
        with Progress(
            TextColumn("{task.description}"),
            _BudgetBar(),
            TimeElapsedColumn(),
            console=error_console(),
            transient=True,
        ) as progress:
            progress.add_task(f"baseline of {dataset_name}: FLAML, then the floor", total=budget)
            result = run_baseline(
                folder,
                Path(scratch) / "baseline",
                budget_seconds=budget,
                metric=metric,
                seed=seed,
                n_jobs=n_jobs,
                estimators=estimator,
            )
        with MetadataStore.from_config(config) as store:
            registry = Registry(store, ArtifactStore.from_config(config))
            versions = record_baseline(
                registry, result, name=name or f"{dataset_name}-baseline", dataset=recorded
            )
    if as_json:
        print_json(
            {
                "dataset": dataset_name,
                "dataset_artifact_id": recorded.id if recorded is not None else None,
                "task": result.task.kind,
                "metric": result.metric,
                "validation_rows": result.validation_rows,
                "trials": result.trials,
                "models": [
                    {
                        "model": version.name,
                        "version": version.version,
                        "kind": model.kind,
                        "estimator": model.estimator,
                        "aliases": list(version.aliases),
                        "metrics": dict(model.metrics),
                    }
                    for model, version in zip(result.models, versions, strict=True)
                ],
            }
        )
        return
    title = (
        f"{dataset_name}: {result.task.kind}, {result.metric}, {result.trials} FLAML trials "
        f"scored on {result.validation_rows} validation rows"
    )
    print_table(_rows(result, versions), title=title)
    automl = versions[0]
    console().print(
        f"registered {len(versions)} versions of {automl.name}; {automl} is {automl.name}:baseline",
        markup=False,
        highlight=False,
    )
