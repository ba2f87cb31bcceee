"""What every command gets from the root callback: the configuration, and the store it names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ratchet.config import Config
from ratchet.metadata import MetadataStore


@contextmanager
def existing_store(ctx: typer.Context) -> Iterator[MetadataStore]:
    """The metadata store of the configuration; a missing embedded store is NotFound."""
    config: Config = ctx.obj
    with MetadataStore.from_config(config, create=False) as store:
        yield store
