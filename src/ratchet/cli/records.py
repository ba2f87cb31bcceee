"""`ratchet experiments|runs|lineage`: reading what tracking and pipelines recorded.

Owns the commands that show experiments, runs and lineage; the queries are
`ratchet.tracking` and `ratchet.metadata` calls, the rendering `output`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.tree import Tree

from ratchet.cli.context import existing_store
from ratchet.cli.output import console, emit, frame_rows, print_json, print_table
from ratchet.config import Config
from ratchet.errors import InvalidArgument
from ratchet.metadata import Artifact, Context, EventType, Execution, LineageGraph, MetadataStore
from ratchet.metadata.lineage import DIRECTIONS
from ratchet.tracking import tracker

experiments = typer.Typer(help="List and delete experiments.", no_args_is_help=True)
runs = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.add_typer(experiments, name="experiments")
    app.add_typer(runs, name="runs")
    app.command("lineage")(lineage)


@experiments.command("list")
def list_experiments(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Experiments with their number of runs."""
    with existing_store(ctx) as store:
        rows = [
            {
                "experiment": e.name,
                "runs": len(store.find_contexts(type=tracker.RUN, parent=e.id)),
                "created": e.create_time,
                "description": e.properties.get("description", ""),
            }
            for e in store.find_contexts(type=tracker.EXPERIMENT)
        ]
    emit(rows, as_json=as_json, title="experiments")


@experiments.command("delete")
def delete_experiment(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an experiment with its runs, parameters, metrics and time series."""
    if not yes:
        typer.confirm(f"delete experiment {name!r} and all its runs?", abort=True)
    config: Config = ctx.obj
    with existing_store(ctx) as store:
        deleted = tracker.delete_experiment(store, name, run_root=config.home / "runs")
    console().print(f"deleted experiment {name!r} and {deleted} runs")


@runs.command("list")
def list_runs(ctx: typer.Context, experiment: str, as_json: JsonOption = False) -> None:
    """The runs of an experiment with their parameters and summary metrics."""
    with existing_store(ctx) as store:
        frame = tracker.experiment_df(store, experiment)
    emit(frame_rows(frame), as_json=as_json, title=f"runs of {experiment}")


def _run_summary(store: MetadataStore, run: Context) -> dict[str, Any]:
    assert run.id is not None
    series = store.read_time_series(run.id)
    custom = run.custom_properties
    return {
        "id": run.id,
        "experiment": run.properties.get("experiment"),
        "run": run.properties.get("run_name"),
        "state": run.properties.get("state"),
        "start_time": run.properties.get("start_time"),
        "end_time": run.properties.get("end_time"),
        "params": {k[len(tracker.PARAM) :]: v for k, v in custom.items() if k.startswith("param.")},
        "metrics": {
            k[len(tracker.METRIC) :]: v for k, v in custom.items() if k.startswith("metric.")
        },
        "time_series": {
            name: {
                "points": len(block),
                "last_step": int(block.steps[-1]),
                "last_value": float(block.values[-1]),
            }
            for name, block in series.items()
        },
        "artifacts": [
            {"id": a.id, "type": a.type, "uri": a.uri, "sha256": a.sha256}
            for a in store.find_artifacts(context=run.id)
        ],
    }


@runs.command("show")
def show_run(ctx: typer.Context, run: str, as_json: JsonOption = False) -> None:
    """One run: state, parameters, metrics, time series and artifacts.

    RUN is EXPERIMENT/RUN, a run id, or a run name that only one experiment has.
    """
    with existing_store(ctx) as store:
        summary = _run_summary(store, tracker.resolve_run(store, run))
    if as_json:
        print_json(summary)
        return
    heading = {
        k: summary[k] for k in ("id", "experiment", "run", "state", "start_time", "end_time")
    }
    print_table([{"field": k, "value": v} for k, v in heading.items()], title="run")
    for section in ("params", "metrics"):
        rows = [{"name": k, "value": v} for k, v in summary[section].items()]
        print_table(rows, title=section)
    series_rows = [{"metric": k, **v} for k, v in summary["time_series"].items()]
    print_table(series_rows, title="time series")
    print_table(summary["artifacts"], title="artifacts", columns=("id", "type", "uri", "sha256"))


@runs.command("compare")
def compare_runs(
    ctx: typer.Context,
    run_refs: Annotated[list[str], typer.Argument(metavar="RUN...", help="Two or more runs.")],
    as_json: JsonOption = False,
) -> None:
    """Parameters and metrics of runs side by side; rows that differ are marked."""
    if len(run_refs) < 2:
        raise InvalidArgument("compare needs at least two runs")
    with existing_store(ctx) as store:
        summaries = [_run_summary(store, tracker.resolve_run(store, ref)) for ref in run_refs]
    labels = [f"{s['experiment']}/{s['run']}" for s in summaries]
    rows = []
    for section in ("params", "metrics"):
        names = sorted({name for s in summaries for name in s[section]})
        for name in names:
            values = [s[section].get(name) for s in summaries]
            row: dict[str, Any] = {"name": f"{section[:-1]}.{name}"}
            row.update(zip(labels, values, strict=True))
            row["differs"] = "*" if len({repr(v) for v in values}) > 1 else ""
            rows.append(row)
    if as_json:
        print_json({"runs": labels, "rows": rows})
    else:
        print_table(rows, title="run comparison", columns=["name", *labels, "differs"])


def lineage(
    ctx: typer.Context,
    artifact_id: Annotated[int, typer.Argument(help="Id of the artifact to trace.")],
    depth: Annotated[int, typer.Option(help="Hops to follow in each direction.")] = 4,
    direction: Annotated[str, typer.Option(help="upstream, downstream or both.")] = "both",
    as_json: JsonOption = False,
) -> None:
    """What an artifact was made from (upstream) and what was made from it (downstream)."""
    if direction not in DIRECTIONS:
        raise InvalidArgument(f"--direction must be one of {', '.join(DIRECTIONS)}")
    with existing_store(ctx) as store:
        graph = store.lineage(artifact_id=artifact_id, direction=direction, depth=depth)
    if as_json:
        print_json(
            {
                "artifacts": [_artifact_row(a) for a in graph.artifacts],
                "executions": [_execution_row(e) for e in graph.executions],
                "events": graph.event_rows(),
            }
        )
        return
    console().print(_lineage_tree(graph, artifact_id, direction))


def _artifact_row(a: Artifact) -> dict[str, Any]:
    return {
        "id": a.id,
        "type": a.type,
        "name": a.name,
        "uri": a.uri,
        "sha256": a.sha256,
        "state": a.state.value,
    }


def _execution_row(e: Execution) -> dict[str, Any]:
    return {"id": e.id, "type": e.type, "name": e.name, "state": e.state.value}


def _lineage_tree(graph: LineageGraph, root_id: int, direction: str) -> Tree:
    artifacts = {a.id: a for a in graph.artifacts}
    executions = {e.id: e for e in graph.executions}

    def label_artifact(artifact_id: int) -> str:
        a = artifacts[artifact_id]
        where = f"sha256:{a.sha256[:12]}" if a.sha256 else a.uri
        return f"[bold]artifact {a.id}[/] {a.type} {a.name or ''} {where}"

    def label_execution(execution_id: int) -> str:
        e = executions[execution_id]
        return f"[cyan]execution {e.id}[/] {e.type} {e.name or ''} ({e.state.value})"

    def grow(node: Tree, artifact_id: int, upstream: bool, seen: set[int]) -> None:
        into_artifact = EventType.OUTPUT if upstream else EventType.INPUT
        out_of_execution = EventType.INPUT if upstream else EventType.OUTPUT
        for event in graph.events:
            if event.artifact_id != artifact_id or event.type != into_artifact:
                continue
            if event.execution_id in seen:
                continue
            branch = node.add(f"{label_execution(event.execution_id)} as {event.path}")
            for other in graph.events:
                if other.execution_id == event.execution_id and other.type == out_of_execution:
                    leaf = branch.add(f"{other.path}: {label_artifact(other.artifact_id)}")
                    grow(leaf, other.artifact_id, upstream, seen | {event.execution_id})

    tree = Tree(label_artifact(root_id))
    for upstream, title in ((True, "upstream (made from)"), (False, "downstream (used by)")):
        if direction in ("both", "upstream" if upstream else "downstream"):
            grow(tree.add(title), root_id, upstream, set())
    return tree
