"""`ratchet tune run|show`: hyperparameter studies from the shell.

Owns reading a study's YAML file (the search space plus what the trials run:
`trainer`, `dataset`, `fixed`, `init_weights`, and how many: `max_trials`,
`parallel_trials`, `failure_budget`; optional `early_stopping` and `warm_start`),
the progress bar while trials run, and the tables of `show`. Studies themselves
are `ratchet.tuning`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ratchet import datasets
from ratchet.artifacts import ArtifactStore
from ratchet.cli.output import console, emit, print_json, print_table
from ratchet.config import Config
from ratchet.errors import InvalidArgument, NotFound
from ratchet.metadata import MetadataStore
from ratchet.training.hub import Hub, WeightsRef
from ratchet.tuning.results import record_best
from ratchet.tuning.space import StudyConfig
from ratchet.tuning.study import EarlyStopping, Study, TrialRecord
from ratchet.tuning.trials import TrialTarget
from ratchet.tuning.warmstart import warm_start

app = typer.Typer(help="Hyperparameter tuning studies.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
RUN_KEYS = {
    "study", "trainer", "dataset", "fixed", "init_weights", "max_trials", "parallel_trials",
    "failure_budget", "seed", "early_stopping", "warm_start", "parameters", "metrics",
    "algorithm", "grid_points",
}  # fmt: skip


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"no study file {path}") from None
    except yaml.YAMLError as e:
        raise InvalidArgument(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path} must hold a mapping")
    unknown = sorted(set(data) - RUN_KEYS)
    if unknown:
        raise InvalidArgument(f"{path}: unknown key {unknown[0]!r}")
    for key in ("study", "trainer"):
        if key not in data:
            raise InvalidArgument(f"{path}: give '{key}'")
    return data


def _dataset(store: MetadataStore, value: str | None) -> tuple[Path | None, str | None]:
    """A dataset folder, or a registered dataset's name (its newest version)."""
    if value is None:
        return None, None
    folder = Path(value)
    if folder.is_dir():
        return folder, None
    versions = datasets.find_versions(store, value)
    if not versions:
        raise NotFound(f"no dataset folder or registered dataset {value!r}")
    return Path(versions[0].uri), versions[0].sha256


def _study(data: Mapping[str, Any], config: StudyConfig, url: str) -> Study:
    seed = data.get("seed")
    stopping = EarlyStopping(**(data.get("early_stopping") or {}))
    warm = data.get("warm_start")
    if warm:
        previous = Study.load(str(warm["from"]), url=url)
        try:
            return Study.load(str(data["study"]), url=url, seed=seed)
        except NotFound:
            return warm_start(
                previous,
                str(data["study"]),
                top_k=int(warm.get("top_k", 3)),
                narrow=float(warm.get("narrow", 0.5)),
                seed=seed,
            )
    return Study.create(
        str(data["study"]), config, url=url, early_stopping=stopping, seed=seed, exist_ok=True
    )


@app.command("run")
def run_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The study's YAML file.")],
    as_json: JsonOption = False,
) -> None:
    """Run a study's trials (resuming it if it exists) and record its best hyperparameters."""
    config: Config = ctx.obj
    data = _read(path)
    space = StudyConfig.from_dict(data)
    max_trials = int(data.get("max_trials", 20))
    with MetadataStore.from_config(config) as store:
        folder, version = _dataset(store, data.get("dataset"))
        weights: WeightsRef | None = None
        if data.get("init_weights"):
            hub = Hub(store, ArtifactStore.from_config(config))
            weights = hub.resolve(str(data["init_weights"]))
        study = _study(data, space, config.db_url)
        target = TrialTarget(
            str(data["trainer"]),
            fixed=dict(data.get("fixed") or {}),
            dataset=folder,
            dataset_version=version,
            init_weights=weights,
        )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(),
            disable=as_json,
        ) as progress:
            done = len([t for t in study.trials() if t.state not in ("RUNNING", "WAITING")])
            bar = progress.add_task(f"study {study.name}", total=max_trials, completed=done)
            study.optimize(
                target,
                max_trials=max_trials,
                parallel_trials=int(data.get("parallel_trials", 1)),
                failure_budget=int(data.get("failure_budget", 3)),
                root=config.home / "studies",
                store=store,
                on_trial=lambda record: progress.advance(bar),
            )
        artifact = record_best(
            study, store, dataset_version=version, init_weights=weights, fixed=dict(target.fixed)
        )
    best = study.best_trials()[0]
    summary = {
        "study": study.name,
        "best_trial": best.number,
        "metrics": best.metrics,
        "hyperparameters": artifact.custom_properties["values"],
        "artifact": artifact.id,
    }
    if as_json:
        print_json(summary)
    else:
        _print_trials(study.trials(), title=f"study {study.name}")
        console().print(
            f"best trial {best.number}: {best.metrics}; hyperparameters recorded as artifact "
            f"{artifact.id}"
        )


def _rows(trials: list[TrialRecord]) -> list[dict[str, Any]]:
    return [
        {
            "trial": t.number,
            "state": t.state,
            **t.parameters,
            **t.metrics,
            "stopped at": t.stopped_at,
            "reason": t.attributes.get("reason"),
        }
        for t in trials
    ]


def _print_trials(trials: list[TrialRecord], *, title: str) -> None:
    print_table(_rows(trials), title=title)


@app.command("show")
def show_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The study's name.")],
    as_json: JsonOption = False,
) -> None:
    """A study's trials, its best trial and each parameter's importance."""
    config: Config = ctx.obj
    study = Study.load(name, url=config.db_url)
    trials = study.trials()
    try:
        best = study.best_trials()
    except NotFound:
        best = []
    importance = study.importance()
    if as_json:
        print_json(
            {
                "study": name,
                "config": study.config.to_dict(),
                "trials": _rows(trials),
                "best": [b.number for b in best],
                "importance": importance,
            }
        )
        return
    _print_trials(trials, title=f"study {name}")
    for record in best:
        console().print(f"best trial {record.number}: {record.parameters} -> {record.metrics}")
    emit(
        [{"parameter": k, "importance": v} for k, v in importance.items()],
        as_json=False,
        title="parameter importance (fANOVA)",
    )
