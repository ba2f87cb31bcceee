"""The records of the metadata store: ML Metadata's data model as frozen dataclasses.

Owns the shapes a caller hands to and gets back from `MetadataStore`:
types, artifacts, executions, contexts, events and lineage graphs. It does not
touch the database; `schema` holds the tables and `store` the queries.
A record with `id=None` is new; the store returns copies carrying ids and times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

#: A property value: scalars, or a JSON-serialisable struct (dict or list).
PropertyValue = int | float | str | bool | dict[str, Any] | list[Any]


class Kind(StrEnum):
    ARTIFACT = "artifact"
    EXECUTION = "execution"
    CONTEXT = "context"


class PropertyType(StrEnum):
    INT = "int"
    DOUBLE = "double"
    STRING = "string"
    BOOL = "bool"
    STRUCT = "struct"


class ArtifactState(StrEnum):
    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    LIVE = "LIVE"
    MARKED_FOR_DELETION = "MARKED_FOR_DELETION"
    DELETED = "DELETED"
    ABANDONED = "ABANDONED"
    REFERENCE = "REFERENCE"


class ExecutionState(StrEnum):
    UNKNOWN = "UNKNOWN"
    NEW = "NEW"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CACHED = "CACHED"
    SKIPPED = "SKIPPED"
    CANCELED = "CANCELED"


class EventType(StrEnum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


@dataclass(frozen=True)
class RecordType:
    """A named type of artifact, execution or context with declared property types."""

    kind: Kind
    name: str
    properties: Mapping[str, PropertyType] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class Artifact:
    """A piece of data: where it is (`uri`), what it is (`sha256`) and what it means."""

    type: str
    uri: str = ""
    sha256: str | None = None
    state: ArtifactState = ArtifactState.LIVE
    name: str | None = None
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    custom_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    id: int | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True)
class Execution:
    """A run of a component, a training job, a trial: something that read and wrote artifacts."""

    type: str
    name: str | None = None
    state: ExecutionState = ExecutionState.NEW
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    custom_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    id: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True)
class Context:
    """A grouping: an experiment, a run, a pipeline, a pipeline run, a study, a model."""

    type: str
    name: str
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    custom_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    id: int | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True)
class Event:
    """An edge of lineage: an execution read (INPUT) or wrote (OUTPUT) an artifact.

    `path` names the role of the artifact in the execution, e.g. "model" or "examples".
    """

    artifact_id: int
    execution_id: int
    type: EventType
    path: str | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class ExecutionWrite:
    """What `put_execution` wrote in one transaction, every record carrying its id."""

    execution: Execution
    inputs: Mapping[str, Artifact]
    outputs: Mapping[str, Artifact]
    events: tuple[Event, ...]


@dataclass(frozen=True)
class LineageGraph:
    """A subgraph of lineage: the artifacts and executions reached and the events joining them."""

    artifacts: tuple[Artifact, ...]
    executions: tuple[Execution, ...]
    events: tuple[Event, ...]

    def event_rows(self) -> list[dict[str, Any]]:
        """The events as plain rows, as `ratchet lineage --json` and the dashboard show them."""
        return [
            {
                "artifact_id": e.artifact_id,
                "execution_id": e.execution_id,
                "type": e.type.value,
                "path": e.path,
            }
            for e in self.events
        ]


Record = Artifact | Execution | Context
