"""`ratchet formalize run` and `ratchet watch`: formalization passes from the shell.

Owns turning options and an optional settings YAML into `Settings`, a SOURCE and
its options into a watched source and schedule, and printing each pass's
decision, candidate and gate outcome. The passes, sources and schedules are
`ratchet.formalize`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ratchet.cli.output import console, print_json
from ratchet.config import Config
from ratchet.errors import InvalidArgument, NotFound
from ratchet.formalize.controller import Cron, Every, Schedule, watch
from ratchet.formalize.passes import PassResult, Settings, run_pass
from ratchet.formalize.sources import FileSource, Source, SqlSource

app = typer.Typer(help="Formalized pipelines: one pass over new data.", no_args_is_help=True)
NameOption = Annotated[str, typer.Option("--name", help="The dataset and model name.")]
LabelOption = Annotated[str, typer.Option("--label", help="The label column.")]
SettingsOption = Annotated[
    Path | None, typer.Option("--settings", help="YAML with the pass's settings.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping (`what` names it in errors): one-line errors."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"no {what} file {path}") from None
    except yaml.YAMLError as e:
        raise InvalidArgument(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise InvalidArgument(f"{path} must hold a mapping")
    return loaded


def settings_from(name: str, label: str, path: Path | None) -> Settings:
    values = read_mapping(path, "settings") if path is not None else {}
    return Settings.from_dict(name, label, values)


def _summary(result: PassResult) -> dict[str, Any]:
    return {
        "dataset": result.dataset.name,
        "action": result.decision.action.value,
        "reasons": list(result.decision.reasons),
        "candidate": str(result.candidate) if result.candidate else None,
        "promoted": result.promoted,
        "gate": list(result.reasons),
    }


@app.command("run")
def run_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A CSV or Parquet file (or folder, or glob).")],
    name: NameOption,
    label: LabelOption,
    settings: SettingsOption = None,
    as_json: JsonOption = False,
) -> None:
    """One pass: data pipeline, the policy's decision, training, the gate."""
    config: Config = ctx.obj
    say = (lambda line: None) if as_json else console().print
    result = run_pass(config, source, settings_from(name, label, settings), say=say)
    if as_json:
        print_json(_summary(result))


def watch_command(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="A folder or glob of CSV/Parquet files, or a database URL (with --query)."
        ),
    ],
    name: NameOption,
    label: LabelOption,
    settings: SettingsOption = None,
    query: Annotated[
        str | None, typer.Option(help="SQL whose new rows to pass (SOURCE is its database URL).")
    ] = None,
    cursor_column: Annotated[
        str | None,
        typer.Option(help="The query's ever-growing column (id, timestamp) that marks new rows."),
    ] = None,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between polls [default: 60].")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help='Poll at cron times (UTC) instead, e.g. "*/5 * * * *".')
    ] = None,
    once: Annotated[bool, typer.Option(help="Pass the new data, then stop.")] = False,
) -> None:
    """Keep formalizing: one pass per new file or batch of new rows; resumes after a crash."""
    config: Config = ctx.obj
    watched = _source(config, source, name, query=query, cursor_column=cursor_column)
    schedule = _schedule(interval, cron)
    chosen = settings_from(name, label, settings)
    results = watch(config, watched, chosen, schedule=schedule, once=once, say=console().print)
    if once:
        console().print(f"{len(results)} new batch(es) passed")


def _source(
    config: Config, source: str, name: str, *, query: str | None, cursor_column: str | None
) -> Source:
    # A URL is how `ratchet.data.io` tells a database from files, too.
    if "://" not in source:
        if query is not None or cursor_column is not None:
            raise InvalidArgument("--query and --cursor-column need a database URL as SOURCE")
        return FileSource(source)
    if query is None or cursor_column is None:
        raise InvalidArgument(
            "a database URL as SOURCE needs --query and --cursor-column, e.g. "
            "--query 'SELECT * FROM trips' --cursor-column id"
        )
    return SqlSource(
        source, query, cursor_column=cursor_column, folder=config.home / "incoming" / name
    )


def _schedule(interval: float | None, cron: str | None) -> Schedule:
    if interval is not None and cron is not None:
        raise InvalidArgument("give --interval or --cron, not both")
    return Cron(cron) if cron is not None else Every(60.0 if interval is None else interval)
