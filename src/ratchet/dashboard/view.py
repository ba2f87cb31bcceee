"""What each dashboard page shows, read from the stores as JSON-ready dicts.

Owns one function per page: `overview`, `model`, `lineage`, `experiments` and
`experiment`. Each reads an open store through the capabilities' own queries
(the registry, `find_decisions`/`find_evaluations`, `find_versions`,
`find_hyperparameters`, policy decisions, `FormalizePass` executions, pipeline
versions and runs, tracking contexts) and returns plain dicts and lists, times
as ISO strings, which the JSON answers are and the HTML is rendered from. An
unknown model, artifact or experiment is NotFound. Rendering is `markup`'s,
routing and opening the store `app`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ratchet.components.versioning import PIPELINE_VERSION
from ratchet.datasets import find_versions
from ratchet.errors import NotFound
from ratchet.evaluation import find_decisions, find_evaluations
from ratchet.formalize.controller import PASS
from ratchet.formalize.policy import POLICY_DECISION
from ratchet.metadata import Artifact, EventType, Execution, LineageGraph, MetadataStore
from ratchet.pipelines.recording import PIPELINE_RUN
from ratchet.registry import MOVE_ALIAS, REGISTERED_MODEL, Registry
from ratchet.tracking import tracker
from ratchet.tuning.results import find_hyperparameters

LIMIT = 50  # rows of an ever-growing history (passes, runs, decisions) one page shows
Row = dict[str, Any]


def when(value: datetime | float | object | None) -> str | None:
    """A time as an ISO string; the tracking properties hold epoch seconds."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return None


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def overview(registry: Registry) -> Row:
    """The registered models, formalization passes, policy decisions, datasets, pipelines."""
    store = registry.store
    return {
        "models": [_model_summary(registry, name) for name in registry.models()],
        "passes": _passes(store),
        "policy_decisions": [
            {
                "artifact_id": a.id,
                "time": when(a.create_time),
                "action": a.properties.get("action"),
                "dataset_version": a.properties.get("dataset_version"),
                "reasons": _strings(a.custom_properties.get("reasons")),
            }
            for a in store.find_artifacts(type=POLICY_DECISION, newest_first=True, limit=LIMIT)
        ],
        "datasets": [
            {
                "artifact_id": a.id,
                "name": a.properties.get("name"),
                "version": str(a.properties.get("version", ""))[:12],
                "rows": a.properties.get("rows"),
                "label": a.properties.get("label"),
                "created": when(a.create_time),
            }
            for a in find_versions(store)
        ],
        "hyperparameters": [
            {
                "artifact_id": a.id,
                "study": a.properties.get("study"),
                "metric": a.properties.get("metric"),
                "value": a.properties.get("value"),
                "dataset_version": str(a.properties.get("dataset_version", ""))[:12],
                "created": when(a.create_time),
            }
            for a in find_hyperparameters(store)[:LIMIT]
        ],
        "pipeline_versions": [
            {
                "artifact_id": a.id,
                "pipeline": a.properties.get("pipeline"),
                "version": a.properties.get("short_id"),
                "git_commit": a.properties.get("git_commit"),
                "dirty": a.properties.get("dirty"),
                "created": when(a.create_time),
            }
            for a in store.find_artifacts(type=PIPELINE_VERSION, newest_first=True)
        ],
        "pipeline_runs": [
            {
                "run": c.name,
                "pipeline": c.properties.get("pipeline"),
                "version": str(c.properties.get("version", ""))[:12],
                "state": c.properties.get("state"),
                "started": when(c.create_time),
            }
            for c in store.find_contexts(type=PIPELINE_RUN, newest_first=True, limit=LIMIT)
        ],
        "experiments": len(store.find_contexts(type=tracker.EXPERIMENT)),
    }


def _model_summary(registry: Registry, name: str) -> Row:
    versions = registry.versions(name)
    newest = versions[0] if versions else None
    return {
        "name": name,
        "aliases": registry.aliases(name),
        "versions": len(versions),
        "newest": None
        if newest is None
        else {
            "version": newest.version,
            "artifact_id": newest.artifact_id,
            "created": when(newest.created),
        },
    }


def _passes(store: MetadataStore) -> list[Row]:
    passes = store.find_executions(type=PASS, newest_first=True, limit=LIMIT)
    ids = [e.id for e in passes if e.id is not None]
    datasets = {
        e.execution_id: e.artifact_id
        for e in store.find_events(execution_ids=ids)
        if e.type == EventType.INPUT and e.path == "dataset"
    }
    return [
        {
            "execution_id": e.id,
            "time": when(e.end_time or e.create_time),
            "model": e.custom_properties.get("model"),
            "dataset": e.properties.get("dataset"),
            "dataset_artifact_id": datasets.get(e.id) if e.id is not None else None,
            "decision": e.properties.get("action"),
            "candidate": e.properties.get("candidate") or None,
            "promoted": e.properties.get("promoted"),
            "reasons": _strings(e.custom_properties.get("reasons")),
        }
        for e in passes
    ]


def model(registry: Registry, name: str) -> Row:
    """One model's versions, aliases and their moves, gate decisions and evaluations."""
    store = registry.store
    context = store.find_context(REGISTERED_MODEL, name)
    if context is None:
        raise NotFound(f"no registered model {name!r}")
    moves = store.find_executions(
        type=MOVE_ALIAS, context=context.id, newest_first=True, limit=LIMIT
    )
    return {
        "name": name,
        "aliases": registry.aliases(name),
        "versions": [
            {
                "version": v.version,
                "artifact_id": v.artifact_id,
                "framework": v.framework,
                "aliases": list(v.aliases),
                "labels": v.labels,
                "created": when(v.created),
            }
            for v in registry.versions(name)
        ],
        "alias_moves": [
            {
                "time": when(m.end_time or m.create_time),
                "alias": m.properties.get("alias"),
                "from_version": m.properties.get("from_version"),
                "to_version": m.properties.get("to_version"),
                "reason": m.properties.get("reason"),
            }
            for m in moves
        ],
        "decisions": [_decision(a) for a in find_decisions(store, name)[:LIMIT]],
        "evaluations": [
            {
                "artifact_id": a.id,
                "version": a.properties.get("version"),
                "rows": a.properties.get("rows"),
                "dataset_version": str(a.properties.get("dataset_version", ""))[:12] or None,
                "metrics": _numbers(a.custom_properties.get("metrics")),
                "created": when(a.create_time),
            }
            for a in find_evaluations(store, name)[:LIMIT]
        ],
    }


def _decision(artifact: Artifact) -> Row:
    custom = artifact.custom_properties
    return {
        "artifact_id": artifact.id,
        "time": when(artifact.create_time),
        "alias": artifact.properties.get("alias"),
        "candidate_version": artifact.properties.get("candidate_version"),
        "champion_version": artifact.properties.get("champion_version"),
        "objective": artifact.properties.get("objective"),
        "candidate_value": custom.get("candidate_value"),
        "champion_value": custom.get("champion_value"),
        "improvement": custom.get("improvement"),
        "promote": artifact.properties.get("promote"),
        "reasons": _strings(custom.get("reasons")),
    }


def _numbers(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def lineage(store: MetadataStore, artifact_id: int, *, depth: int = 4) -> Row:
    """An artifact, what it was made from (upstream) and what was made from it (downstream).

    Each tree node is an execution with the artifacts on its far side, each of
    those with the executions beyond it, `depth` hops at most, as `ratchet lineage` prints.
    """
    graph = store.lineage(artifact_id=artifact_id, direction="both", depth=depth)
    return {
        "artifact": artifact_row(store.get_artifact(artifact_id)),
        "upstream": _grow(graph, artifact_id, upstream=True, seen=frozenset()),
        "downstream": _grow(graph, artifact_id, upstream=False, seen=frozenset()),
        "artifacts": [artifact_row(a) for a in graph.artifacts],
        "executions": [_execution_row(e) for e in graph.executions],
        "events": graph.event_rows(),
    }


def _grow(
    graph: LineageGraph, artifact_id: int, *, upstream: bool, seen: frozenset[int]
) -> list[Row]:
    # Upstream an artifact came OUT of an execution that took artifacts IN; downstream
    # the other way round. `seen` stops a cycle through the same execution.
    into_artifact = EventType.OUTPUT if upstream else EventType.INPUT
    beyond = EventType.INPUT if upstream else EventType.OUTPUT
    artifacts = {a.id: a for a in graph.artifacts}
    executions = {e.id: e for e in graph.executions}
    nodes = []
    for event in graph.events:
        if event.artifact_id != artifact_id or event.type != into_artifact:
            continue
        if event.execution_id in seen:
            continue
        nodes.append(
            {
                "execution": _execution_row(executions[event.execution_id]),
                "role": event.path,
                "artifacts": [
                    {
                        "role": other.path,
                        "artifact": artifact_row(artifacts[other.artifact_id]),
                        "next": _grow(
                            graph,
                            other.artifact_id,
                            upstream=upstream,
                            seen=seen | {event.execution_id},
                        ),
                    }
                    for other in graph.events
                    if other.execution_id == event.execution_id and other.type == beyond
                ],
            }
        )
    return nodes


def artifact_row(a: Artifact) -> Row:
    return {
        "id": a.id,
        "type": a.type,
        "name": a.name,
        "uri": a.uri,
        "sha256": a.sha256,
        "state": a.state.value,
        "created": when(a.create_time),
    }


def _execution_row(e: Execution) -> Row:
    return {
        "id": e.id,
        "type": e.type,
        "name": e.name,
        "state": e.state.value,
        "time": when(e.end_time or e.create_time),
    }


def experiments(store: MetadataStore) -> Row:
    """The tracking experiments with their number of runs."""
    return {
        "experiments": [
            {
                "name": e.name,
                "runs": len(store.find_contexts(type=tracker.RUN, parent=e.id)),
                "created": when(e.create_time),
                "description": e.properties.get("description", ""),
            }
            for e in store.find_contexts(type=tracker.EXPERIMENT)
        ]
    }


def experiment(store: MetadataStore, name: str) -> Row:
    """One experiment's runs with their state, parameters, metrics and artifacts."""
    found = store.find_context(tracker.EXPERIMENT, name)
    if found is None:
        raise NotFound(f"no experiment {name!r}")
    runs = []
    for run in store.find_contexts(type=tracker.RUN, parent=found.id):
        custom = run.custom_properties
        runs.append(
            {
                "id": run.id,
                "run": run.properties.get("run_name"),
                "state": run.properties.get("state"),
                "start_time": when(run.properties.get("start_time")),
                "end_time": when(run.properties.get("end_time")),
                "params": {
                    k.removeprefix(tracker.PARAM): v
                    for k, v in custom.items()
                    if k.startswith(tracker.PARAM)
                },
                "metrics": {
                    k.removeprefix(tracker.METRIC): v
                    for k, v in custom.items()
                    if k.startswith(tracker.METRIC)
                },
                "artifacts": [
                    {"id": a.id, "type": a.type, "name": a.name}
                    for a in store.find_artifacts(context=run.id)
                ],
            }
        )
    return {
        "name": found.name,
        "description": found.properties.get("description", ""),
        "created": when(found.create_time),
        "runs": runs,
    }
