"""`ratchet store info|migrate`: where the stores are, their schema revision and size."""

from __future__ import annotations

from typing import Annotated

import typer

from ratchet.cli.output import console, print_json, print_table
from ratchet.config import Config
from ratchet.metadata import MetadataStore
from ratchet.metadata.database import display_url, head_revision

app = typer.Typer(help="Inspect and migrate the metadata store.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("info")
def info(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the store's location, schema revision and number of records."""
    config: Config = ctx.obj
    with MetadataStore.from_config(config, create=False) as store:
        data = {
            "home": str(config.home),
            "db_url": display_url(config.db_url),
            "artifact_url": config.artifact_url,
            "dialect": store.dialect,
            "revision": store.revision(),
            "code_revision": head_revision(),
            "counts": store.counts(),
        }
    if as_json:
        print_json(data)
        return
    counts = data.pop("counts")
    print_table([{"setting": k, "value": v} for k, v in data.items()], title="ratchet store")
    assert isinstance(counts, dict)
    print_table([{"table": k, "rows": v} for k, v in counts.items()], title="records")


@app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Apply pending schema migrations (opening a store does this too)."""
    config: Config = ctx.obj
    before = None
    if not config.uses_default_db or (config.home / "metadata.db").exists():
        with MetadataStore(config.db_url, migrate=False) as store:
            before = store.revision()
    with MetadataStore.from_config(config) as store:
        after = store.revision()
    if before == after:
        console().print(f"store is up to date at revision {after}")
    else:
        console().print(f"migrated store from {before or 'empty'} to {after}")
