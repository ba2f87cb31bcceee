"""`ratchet pipeline run|compile|runs|show|versions|resume`: KFP pipelines from the shell."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from ratchet import pipelines
from ratchet.cli.context import existing_store
from ratchet.cli.output import console, emit, error_console, print_json, print_table
from ratchet.config import Config
from ratchet.errors import InvalidArgument, NotFound
from ratchet.pipelines.graph import TaskState
from ratchet.pipelines.recording import PIPELINE, PIPELINE_RUN, PIPELINE_VERSION, TASK
from ratchet.pipelines.runner import OnChange

app = typer.Typer(
    help="Run, compile and inspect Kubeflow (KFP v2) pipelines.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
STYLES = {
    TaskState.PENDING: "dim",
    TaskState.RUNNING: "yellow",
    TaskState.COMPLETE: "green",
    TaskState.CACHED: "cyan",
    TaskState.FAILED: "bold red",
    TaskState.SKIPPED: "dim",
    TaskState.CANCELLED: "magenta",
}


def parse_params(values: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values read as JSON when they parse (3, 0.1, true, [1]), else text."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--param takes key=value, got {item!r}")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


class LiveTasks:
    """A live table of task states, fed by the runner's change callback."""

    def __init__(self) -> None:
        self.states: dict[str, TaskState] = {}

    def __call__(self, path: str, state: TaskState) -> None:
        self.states[path] = state

    def __rich__(self) -> Table:
        counts: dict[TaskState, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        summary = ", ".join(f"{n} {s.value.lower()}" for s, n in counts.items())
        table = Table(title=f"tasks: {summary}", show_edge=False)
        table.add_column("task")
        table.add_column("state")
        for path, state in list(self.states.items())[-30:]:
            table.add_row(path, f"[{STYLES[state]}]{state.value.lower()}[/]")
        return table


@app.command("run")
def run(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A .py file with a @dsl.pipeline, or a compiled spec.")
    ],
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Which pipeline in the file.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="key=value, repeatable.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every task.")] = False,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
) -> None:
    """Run a pipeline locally with a live view of its tasks."""
    config: Config = ctx.obj
    arguments = parse_params(param or [])
    _run_live(
        lambda on_change: pipelines.run(
            file,
            arguments,
            enable_caching=not no_cache,
            max_workers=workers,
            config=config,
            pipeline_name=pipeline,
            on_change=on_change,
        )
    )


@app.command("resume")
def resume(ctx: typer.Context, run_name: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Run a failed or cancelled run again, re-using every task that completed."""
    config: Config = ctx.obj
    _run_live(lambda on_change: pipelines.resume(run_name, config=config, on_change=on_change))


def _run_live(start: Callable[[OnChange], pipelines.PipelineRun]) -> None:
    """Run with a live table of task states, then report the outcome."""
    live_tasks = LiveTasks()
    with Live(live_tasks, console=console(), refresh_per_second=8):
        result = start(live_tasks)
    out = console()
    out.print(f"run {result.name}: {result.state}", markup=False)
    if result.outputs:
        out.print(f"outputs: {json.dumps(result.outputs, default=str)}", markup=False)
    for path, error in result.errors.items():
        if result.tasks.get(path) == TaskState.FAILED:
            error_console().print(f"task {path} failed:\n{error}", markup=False, highlight=False)
    if result.state == "FAILED":
        sys.exit(1)
    if result.state == "CANCELLED":
        sys.exit(130)


@app.command("compile")
def compile_command(
    file: Annotated[Path, typer.Argument(help="A .py file with a @dsl.pipeline.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the IR YAML.")],
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Which pipeline.")] = None,
) -> None:
    """Compile to the KFP IR that Kubeflow Pipelines and Vertex AI Pipelines accept."""
    if not file.is_file():
        raise NotFound(f"no pipeline file {file}")
    spec = pipelines.compile_pipeline(file, output, name=pipeline)
    console().print(f"wrote {output} ({spec.name}, version {spec.version[:12]})", markup=False)


@app.command("runs")
def runs(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Pipeline runs, newest first."""
    with existing_store(ctx) as store:
        filters: dict[str, Any] = {"type": PIPELINE_RUN, "newest_first": True}
        if pipeline:
            filters["properties"] = {"pipeline": pipeline}
        rows = [
            {
                "run": c.name,
                "pipeline": c.properties.get("pipeline"),
                "version": str(c.properties.get("version", ""))[:12],
                "state": c.properties.get("state"),
                "started": c.create_time,
                "seconds": _duration(c.properties),
            }
            for c in store.find_contexts(**filters)
        ]
    emit(rows, as_json=as_json, title="pipeline runs")


@app.command("show")
def show(
    ctx: typer.Context,
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    as_json: JsonOption = False,
) -> None:
    """One run: its parameters and every task's state, timing, cache key and error."""
    with existing_store(ctx) as store:
        context = store.find_context(PIPELINE_RUN, run_name)
        if context is None:
            raise NotFound(f"no pipeline run {run_name!r}")
        tasks = [
            {
                "id": e.id,
                "task": e.properties.get("task"),
                "state": e.state.value,
                "seconds": round((e.end_time - e.start_time).total_seconds(), 3)
                if e.start_time and e.end_time
                else None,
                "cache_key": str(e.properties.get("cache_key", ""))[:12],
                "error": _last_line(e.properties.get("error")),
                "outputs": e.custom_properties.get("outputs", {}),
            }
            for e in store.find_executions(type=TASK, context=context.id)
        ]
    summary = {"run": context.name, **{k: v for k, v in context.properties.items()}}
    if as_json:
        print_json({"run": summary, "tasks": tasks})
        return
    print_table([{"field": k, "value": v} for k, v in summary.items()], title="pipeline run")
    for row in tasks:
        row["outputs"] = json.dumps(row["outputs"], default=str)[:60]
    print_table(tasks, title="tasks")


@app.command("versions")
def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    as_json: JsonOption = False,
) -> None:
    """Versions of a pipeline (content hash of its compiled spec, git commit) and their runs."""
    with existing_store(ctx) as store:
        pipeline = store.find_context(PIPELINE, name)
        if pipeline is None:
            raise NotFound(f"no pipeline {name!r}")
        rows = [
            {
                "version": v.properties.get("version"),
                "git_commit": v.properties.get("git_commit") or "",
                "created": v.create_time,
                "runs": len(store.find_contexts(type=PIPELINE_RUN, parent=v.id)),
            }
            for v in store.find_contexts(type=PIPELINE_VERSION, parent=pipeline.id)
        ]
    emit(rows, as_json=as_json, title=f"versions of {name}")


def _last_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1] if lines else ""


def _duration(properties: dict[str, Any] | Any) -> float | None:
    start, end = properties.get("start_time"), properties.get("end_time")
    if isinstance(start, float) and isinstance(end, float):
        return round(end - start, 3)
    return None
