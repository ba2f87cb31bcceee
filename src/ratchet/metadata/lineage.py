"""Lineage traversal: the upstream and downstream subgraph of an artifact or execution.

Owns the walk over events, one query per hop, so a deep graph costs `depth`
round trips rather than one per node. Building records from ids is `store`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ratchet.errors import InvalidArgument, NotFound
from ratchet.metadata import rows, schema
from ratchet.metadata.records import Event, EventType

DIRECTIONS = ("upstream", "downstream", "both")


def events_of(
    conn: sa.Connection,
    *,
    artifact_ids: Sequence[int] = (),
    execution_ids: Sequence[int] = (),
    event_type: EventType | None = None,
) -> list[Event]:
    """Events touching any of the given artifacts or executions, oldest first."""
    ev = schema.events
    touching = []
    if artifact_ids:
        touching.append(ev.c.artifact_id.in_(list(artifact_ids)))
    if execution_ids:
        touching.append(ev.c.execution_id.in_(list(execution_ids)))
    if not touching:
        return []
    query = sa.select(ev).where(sa.or_(*touching)).order_by(ev.c.id)
    if event_type is not None:
        query = query.where(ev.c.type == event_type.value)
    return [
        Event(r.artifact_id, r.execution_id, EventType(r.type), r.path, rows.to_datetime(r.time))
        for r in conn.execute(query)
    ]


def subgraph(
    conn: sa.Connection,
    *,
    artifact_id: int | None,
    execution_id: int | None,
    direction: str,
    depth: int,
) -> tuple[set[int], set[int], list[Event]]:
    """Ids of the artifacts and executions within `depth` hops, and the events between them.

    Upstream follows what a node was made from; downstream what was made from it.
    "both" walks each direction separately, so siblings (other inputs of a consumer)
    are not pulled in.
    """
    if (artifact_id is None) == (execution_id is None):
        raise InvalidArgument("give exactly one of artifact_id and execution_id")
    if direction not in DIRECTIONS:
        raise InvalidArgument(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    if depth < 0:
        raise InvalidArgument(f"depth must be >= 0, not {depth}")
    _check_root(conn, artifact_id, execution_id)
    root_artifacts: set[int] = set() if artifact_id is None else {artifact_id}
    root_executions: set[int] = set() if execution_id is None else {execution_id}
    artifacts, executions = set(root_artifacts), set(root_executions)
    events: dict[tuple[int, int, str], Event] = {}
    for upstream in (True, False):
        if direction == ("downstream" if upstream else "upstream"):
            continue
        # Each direction starts from the root alone: walking downstream from the
        # ancestors found upstream would pull in their other consumers.
        found_artifacts, found_executions = _walk(
            conn,
            set(root_artifacts),
            set(root_executions),
            upstream=upstream,
            depth=depth,
            events=events,
        )
        artifacts |= found_artifacts
        executions |= found_executions
    return (
        artifacts,
        executions,
        sorted(events.values(), key=lambda e: (e.execution_id, e.artifact_id)),
    )


def _walk(
    conn: sa.Connection,
    artifacts: set[int],
    executions: set[int],
    *,
    upstream: bool,
    depth: int,
    events: dict[tuple[int, int, str], Event],
) -> tuple[set[int], set[int]]:
    # Upstream, an artifact comes from the execution that OUTPUT it, and an execution from
    # the artifacts it took as INPUT; downstream it is the other way round.
    from_artifact = EventType.OUTPUT if upstream else EventType.INPUT
    from_execution = EventType.INPUT if upstream else EventType.OUTPUT
    artifact_frontier = set(artifacts)
    execution_frontier = set(executions)
    for _ in range(depth):
        if not artifact_frontier and not execution_frontier:
            break
        hop: list[Event] = []
        if artifact_frontier:
            hop += events_of(conn, artifact_ids=sorted(artifact_frontier), event_type=from_artifact)
        if execution_frontier:
            hop += events_of(
                conn, execution_ids=sorted(execution_frontier), event_type=from_execution
            )
        next_artifacts: set[int] = set()
        next_executions: set[int] = set()
        for event in hop:
            events[(event.artifact_id, event.execution_id, event.type.value)] = event
            if event.artifact_id in artifact_frontier and event.type == from_artifact:
                next_executions.add(event.execution_id)
            if event.execution_id in execution_frontier and event.type == from_execution:
                next_artifacts.add(event.artifact_id)
        artifact_frontier = next_artifacts - artifacts
        execution_frontier = next_executions - executions
        artifacts |= artifact_frontier
        executions |= execution_frontier
    return artifacts, executions


def _check_root(conn: sa.Connection, artifact_id: int | None, execution_id: int | None) -> None:
    table, record_id, kind = (
        (schema.artifacts, artifact_id, "artifact")
        if artifact_id is not None
        else (schema.executions, execution_id, "execution")
    )
    if conn.execute(sa.select(table.c.id).where(table.c.id == record_id)).first() is None:
        raise NotFound(f"no {kind} with id {record_id}")
