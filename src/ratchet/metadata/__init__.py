"""The ML metadata store: artifacts, executions, contexts, events, lineage and time series.

`MetadataStore` is the entry point; the records are in `records`. SQLite by
default (`sqlite:///$RATCHET_HOME/metadata.db`), PostgreSQL through a URL.
"""

from ratchet.metadata.query import RecordFilter
from ratchet.metadata.records import (
    Artifact,
    ArtifactState,
    Context,
    Event,
    EventType,
    Execution,
    ExecutionState,
    ExecutionWrite,
    Kind,
    LineageGraph,
    PropertyType,
    RecordType,
)
from ratchet.metadata.store import MetadataStore

__all__ = [
    "Artifact",
    "ArtifactState",
    "Context",
    "Event",
    "EventType",
    "Execution",
    "ExecutionState",
    "ExecutionWrite",
    "Kind",
    "LineageGraph",
    "MetadataStore",
    "PropertyType",
    "RecordFilter",
    "RecordType",
]
