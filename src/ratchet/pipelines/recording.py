"""Lineage of pipeline runs in the metadata store, and the task cache that reads it.

Owns what a run records: a `Pipeline` context, a `PipelineVersion` context per
content hash of the compiled spec (with the git commit), a `PipelineRun`
context, the run's parameters as an artifact, and one `PipelineTask` execution
per task with its input and output artifacts as events. The cache is a query
over those executions: a task is a hit when a COMPLETE execution has its key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ratchet.artifacts import ArtifactStore, hash_path
from ratchet.errors import NotFound
from ratchet.metadata import (
    Artifact,
    Context,
    EventType,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.pipelines.contract import ArtifactValue
from ratchet.pipelines.graph import TaskState
from ratchet.pipelines.spec import PipelineSpec

PIPELINE = "Pipeline"
PIPELINE_VERSION = "PipelineVersion"
PIPELINE_RUN = "PipelineRun"
TASK = "PipelineTask"
PARAMETERS = "PipelineParameters"
SPEC = "PipelineSpec"
PARAMETERS_PATH = "pipeline-parameters"

RECORD_TYPES = (
    RecordType(Kind.CONTEXT, PIPELINE),
    RecordType(
        Kind.CONTEXT,
        PIPELINE_VERSION,
        {
            "pipeline": PropertyType.STRING,
            "version": PropertyType.STRING,
            "git_commit": PropertyType.STRING,
        },
    ),
    RecordType(
        Kind.CONTEXT,
        PIPELINE_RUN,
        {
            "pipeline": PropertyType.STRING,
            "version": PropertyType.STRING,
            "state": PropertyType.STRING,
            "start_time": PropertyType.DOUBLE,
            "end_time": PropertyType.DOUBLE,
            "arguments": PropertyType.STRUCT,
            "resumed_from": PropertyType.STRING,
            "error": PropertyType.STRING,
        },
    ),
    RecordType(
        Kind.EXECUTION,
        TASK,
        {
            "task": PropertyType.STRING,
            "component": PropertyType.STRING,
            "cache_key": PropertyType.STRING,
            "task_key": PropertyType.STRING,
            "log_uri": PropertyType.STRING,
            "run": PropertyType.STRING,
            "error": PropertyType.STRING,
        },
    ),
    RecordType(Kind.ARTIFACT, PARAMETERS),
    RecordType(Kind.ARTIFACT, SPEC),
)

_EXECUTION_STATE = {
    TaskState.COMPLETE: ExecutionState.COMPLETE,
    TaskState.CACHED: ExecutionState.CACHED,
    TaskState.FAILED: ExecutionState.FAILED,
    TaskState.SKIPPED: ExecutionState.SKIPPED,
    TaskState.CANCELLED: ExecutionState.CANCELED,
}


def cache_key(
    component: Mapping[str, Any],
    executor: Mapping[str, Any],
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, Sequence[ArtifactValue]],
    artifact_hashes: Mapping[str, str],
) -> str:
    """Hash of the component (its code included), its parameters and its inputs' content."""
    material = {
        "component": component,
        "executor": executor,
        "parameters": parameters,
        "artifacts": {
            name: [artifact_hashes.get(a.uri, a.uri) for a in values]
            for name, values in sorted(artifacts.items())
        },
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class RunRecorder:
    """Records one pipeline run; every write is one transaction of the store."""

    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        spec: PipelineSpec,
        *,
        run_name: str,
        arguments: Mapping[str, Any],
        git_commit: str | None,
        resumed_from: str | None = None,
    ) -> None:
        self.store = store
        self.run_name = run_name
        self._types: set[str] = set()
        for record_type in RECORD_TYPES:
            store.put_type(record_type)
        pipeline = _context(store, PIPELINE, spec.name)
        version_name = f"{spec.name}@{spec.version[:12]}"
        version = store.find_context(PIPELINE_VERSION, version_name)
        if version is None:
            version = store.put_context(
                Context(
                    PIPELINE_VERSION,
                    version_name,
                    properties={
                        "pipeline": spec.name,
                        "version": spec.version,
                        "git_commit": git_commit or "",
                    },
                )
            )
            assert version.id is not None and pipeline.id is not None
            store.put_parent_context(pipeline.id, version.id)
            stored = artifacts.put_bytes(json.dumps(spec.ir, sort_keys=True).encode())
            spec_artifact = store.put_artifact(Artifact(SPEC, uri=stored.uri, sha256=stored.sha256))
            assert spec_artifact.id is not None
            store.put_attribution(version.id, spec_artifact.id)
        props: dict[str, Any] = {
            "pipeline": spec.name,
            "version": spec.version,
            "state": "RUNNING",
            "start_time": time.time(),
            "arguments": dict(arguments),
        }
        if resumed_from:
            props["resumed_from"] = resumed_from
        self.context = store.put_context(Context(PIPELINE_RUN, run_name, properties=props))
        assert self.context.id is not None and version.id is not None
        store.put_parent_context(version.id, self.context.id)
        stored_args = artifacts.put_bytes(json.dumps(dict(arguments), sort_keys=True).encode())
        parameters = store.put_artifact(
            Artifact(
                PARAMETERS,
                uri=stored_args.uri,
                sha256=stored_args.sha256,
                custom_properties={"run": run_name},
            )
        )
        assert parameters.id is not None
        store.put_attribution(self.context.id, parameters.id)
        self.parameters_artifact = parameters
        self.artifact_ids: dict[str, int] = {}
        self.artifact_hashes: dict[str, str] = {}

    def _ensure_type(self, schema_title: str) -> None:
        if schema_title not in self._types:
            self.store.put_type(RecordType(Kind.ARTIFACT, schema_title))
            self._types.add(schema_title)

    def hash_outputs(self, artifacts: Mapping[str, Sequence[ArtifactValue]]) -> None:
        """Remember the content hash of output artifacts (inputs of later cache keys)."""
        for values in artifacts.values():
            for value in values:
                if value.uri not in self.artifact_hashes:
                    # An output declared but never written has no content to hash.
                    with contextlib.suppress(NotFound):
                        self.artifact_hashes[value.uri] = hash_path(value.uri)

    def task(
        self,
        path: str,
        component_name: str,
        state: TaskState,
        *,
        started: float | None,
        parameters: Mapping[str, Any],
        inputs: Mapping[str, Sequence[ArtifactValue]],
        outputs: Mapping[str, Sequence[ArtifactValue]],
        output_parameters: Mapping[str, Any],
        key: str | None = None,
        cacheable: bool = False,
        log_uri: str | None = None,
        error: str | None = None,
        uses_pipeline_parameters: bool = False,
    ) -> None:
        """Write one task's execution with its input and output events."""
        input_artifacts: dict[str, Artifact] = {}
        for name, values in inputs.items():
            for i, value in enumerate(values):
                artifact_id = self.artifact_ids.get(value.uri)
                if artifact_id is not None:
                    label = name if len(values) == 1 else f"{name}[{i}]"
                    input_artifacts[label] = Artifact(value.schema_title, id=artifact_id)
        if uses_pipeline_parameters:
            input_artifacts[PARAMETERS_PATH] = self.parameters_artifact
        output_artifacts: dict[str, Artifact] = {}
        reused: dict[str, Artifact] = {}
        for name, values in outputs.items():
            for i, value in enumerate(values):
                label = name if len(values) == 1 else f"{name}[{i}]"
                known = self.artifact_ids.get(value.uri)
                if known is not None:  # a cache hit hands back the artifact first recorded
                    reused[label] = Artifact(value.schema_title, id=known)
                    continue
                self._ensure_type(value.schema_title)
                output_artifacts[label] = Artifact(
                    value.schema_title,
                    uri=value.uri,
                    sha256=self.artifact_hashes.get(value.uri),
                    custom_properties={"metadata": dict(value.metadata), "name": value.name},
                )
        properties = {"task": path, "component": component_name, "run": self.run_name}
        # Every task keeps its key (resume finds what completed by it); only cacheable
        # tasks offer it as a cache key to later runs.
        properties.update(
            {
                k: v
                for k, v in (
                    ("task_key", key),
                    ("cache_key", key if cacheable else None),
                    ("log_uri", log_uri),
                    ("error", error),
                )
                if v
            }
        )
        execution = Execution(
            TASK,
            name=f"{self.run_name}/{path}",
            state=_EXECUTION_STATE[state],
            properties=properties,
            custom_properties={
                "inputs": _jsonable(parameters),
                "outputs": _jsonable(output_parameters),
            },
            start_time=_datetime(started),
            end_time=_datetime(time.time()),
        )
        written = self.store.put_execution(
            execution,
            inputs=input_artifacts,
            outputs={**output_artifacts, **reused},
            contexts=[self.context],
        )
        for artifact in written.outputs.values():
            if artifact.id is not None and artifact.uri:
                self.artifact_ids[artifact.uri] = artifact.id

    def finish(self, state: str, error: str | None = None) -> None:
        assert self.context.id is not None
        props: dict[str, Any] = {"state": state, "end_time": time.time()}
        if error:
            props["error"] = error[:2000]
        self.store.set_properties(Kind.CONTEXT, self.context.id, properties=props)

    def lookup(
        self, key: str, *, run: str | None = None
    ) -> tuple[dict[str, Any], dict[str, list[ArtifactValue]]] | None:
        """Outputs recorded under `key`, if their files are intact.

        Without `run`: a COMPLETE execution offering it as a cache key. With `run`: the
        execution of that run with this task key that completed or was cached.
        """
        if run is None:
            found = self.store.find_executions(
                type=TASK,
                properties={"cache_key": key},
                state=ExecutionState.COMPLETE.value,
                newest_first=True,
                limit=1,
            )
        else:
            done = (ExecutionState.COMPLETE, ExecutionState.CACHED)
            found = [
                e
                for e in self.store.find_executions(
                    type=TASK, properties={"task_key": key, "run": run}
                )
                if e.state in done
            ]
        if not found or found[0].id is None:
            return None
        execution = found[0]
        events = self.store.find_events(execution_ids=[found[0].id])
        outputs = [e for e in events if e.type == EventType.OUTPUT]
        artifacts: dict[str, list[ArtifactValue]] = {}
        for event in outputs:
            artifact = self.store.get_artifact(event.artifact_id)
            if artifact.sha256 is not None:
                try:
                    if hash_path(artifact.uri) != artifact.sha256:
                        return None  # changed since it was recorded: run the task again
                except NotFound:
                    return None
            name = (event.path or "").split("[", 1)[0]
            custom = artifact.custom_properties
            metadata = custom.get("metadata", {})
            artifacts.setdefault(name, []).append(
                ArtifactValue(
                    str(custom.get("name", name)),
                    artifact.uri,
                    artifact.type,
                    metadata=metadata if isinstance(metadata, dict) else {},
                )
            )
            assert artifact.id is not None
            self.artifact_ids[artifact.uri] = artifact.id
            if artifact.sha256:
                self.artifact_hashes[artifact.uri] = artifact.sha256
        parameters = execution.custom_properties.get("outputs", {})
        return (parameters if isinstance(parameters, dict) else {}), artifacts


def _context(store: MetadataStore, type_name: str, name: str) -> Context:
    found = store.find_context(type_name, name)
    return found if found is not None else store.put_context(Context(type_name, name))


def _datetime(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(values), default=str))  # type: ignore[no-any-return]
