"""The state of one pipeline run as a tree of DAG instances, and how task inputs resolve.

Owns `Scope` (one instance of a DAG: the root, a condition branch, a loop
iteration, a nested pipeline) and `Node` (one task in a scope), the task states,
and the pure functions that read the IR's input bindings and DAG outputs
against that state. Deciding what runs next is `runner`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ratchet.errors import InvalidArgument
from ratchet.pipelines.contract import ArtifactValue


class TaskState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    CACHED = "CACHED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        return self not in (TaskState.PENDING, TaskState.RUNNING)

    @property
    def succeeded(self) -> bool:
        return self in (TaskState.COMPLETE, TaskState.CACHED)


@dataclass(eq=False)
class Node:
    """One task of a scope; for a task whose component is a DAG, `children` are its scopes."""

    name: str
    path: str
    spec: Mapping[str, Any]
    component: Mapping[str, Any]
    scope: Scope
    state: TaskState = TaskState.PENDING
    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[ArtifactValue]] = field(default_factory=dict)
    error: str | None = None
    upstream_failed: bool = False
    attempts: int = 0
    children: list[Scope] = field(default_factory=list)
    waiting: list[Scope] = field(default_factory=list)

    @property
    def dependencies(self) -> list[str]:
        return list(self.spec.get("dependentTasks", []))

    @property
    def runs_after_failure(self) -> bool:
        """Exit handlers (and ignore_upstream_failure tasks) run whatever came before."""
        strategy = self.spec.get("triggerPolicy", {}).get("strategy")
        return bool(strategy == "ALL_UPSTREAM_TASKS_COMPLETED")

    @property
    def failed_for_dependents(self) -> bool:
        return self.state in (TaskState.FAILED, TaskState.CANCELLED) or self.upstream_failed


@dataclass(eq=False)
class Scope:
    """An instance of a DAG: its resolved inputs and the nodes of its tasks."""

    path: str
    component: Mapping[str, Any]
    parameters: dict[str, Any]
    artifacts: dict[str, list[ArtifactValue]]
    owner: Node | None = None
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in self.component.get("dag", {}).get("tasks", {}).items():
            self.nodes[name] = Node(
                name=name,
                path=f"{self.path}/{name}" if self.path else name,
                spec=spec,
                component={},
                scope=self,
            )

    @property
    def done(self) -> bool:
        return all(node.state.done for node in self.nodes.values())

    @property
    def failed(self) -> bool:
        return any(
            node.state in (TaskState.FAILED, TaskState.CANCELLED) for node in self.nodes.values()
        )


def final_status(node: Node, run_name: str) -> dict[str, Any]:
    """The `dsl.PipelineTaskFinalStatus` value an exit handler receives about `node`."""
    failed = node.state in (TaskState.FAILED, TaskState.CANCELLED) or node.upstream_failed
    return {
        "state": "FAILED" if failed else "SUCCEEDED",
        "pipelineJobResourceName": run_name,
        "pipelineTaskName": node.name,
        "error": {"code": 1, "message": node.error or ""} if failed else {},
    }


def resolve_inputs(
    node: Node, run_name: str
) -> tuple[dict[str, Any], dict[str, list[ArtifactValue]]]:
    """The input parameter values and artifacts of a task, read from its scope."""
    scope = node.scope
    inputs = node.spec.get("inputs", {})
    parameters: dict[str, Any] = {}
    for name, binding in inputs.get("parameters", {}).items():
        if "componentInputParameter" in binding:
            key = binding["componentInputParameter"]
            if key not in scope.parameters:
                continue  # an optional input its parent left unset: the component default applies
            value = scope.parameters[key]
        elif "taskOutputParameter" in binding:
            source = binding["taskOutputParameter"]
            producer = scope.nodes[source["producerTask"]]
            if source["outputParameterKey"] not in producer.parameters:
                continue
            value = producer.parameters[source["outputParameterKey"]]
        elif "runtimeValue" in binding:
            value = binding["runtimeValue"].get("constant")
        elif "taskFinalStatus" in binding:
            value = final_status(scope.nodes[binding["taskFinalStatus"]["producerTask"]], run_name)
        else:
            raise InvalidArgument(f"task {node.path!r}: unsupported input binding for {name!r}")
        selector = binding.get("parameterExpressionSelector")
        parameters[name] = select(value, selector) if selector else value
    artifacts: dict[str, list[ArtifactValue]] = {}
    for name, binding in inputs.get("artifacts", {}).items():
        if "componentInputArtifact" in binding:
            found = scope.artifacts.get(binding["componentInputArtifact"])
        elif "taskOutputArtifact" in binding:
            source = binding["taskOutputArtifact"]
            producer = scope.nodes[source["producerTask"]]
            found = producer.artifacts.get(source["outputArtifactKey"])
        else:
            raise InvalidArgument(f"task {node.path!r}: unsupported artifact binding for {name!r}")
        if found is not None:
            artifacts[name] = found
    return parameters, artifacts


def select(value: Any, selector: str) -> Any:
    """Apply the compiler's `parseJson(string_value)["key"]` selectors to a loop item."""
    prefix = "parseJson(string_value)"
    if not selector.startswith(prefix):
        raise InvalidArgument(f"unsupported parameter expression selector {selector!r}")
    current = json.loads(value) if isinstance(value, str) else value
    for key in _selector_keys(selector[len(prefix) :]):
        current = current[key]
    return current


def _selector_keys(rest: str) -> list[str | int]:
    keys: list[str | int] = []
    while rest:
        if not rest.startswith("[") or "]" not in rest:
            raise InvalidArgument(f"unsupported selector suffix {rest!r}")
        inner, rest = rest[1 : rest.index("]")], rest[rest.index("]") + 1 :]
        keys.append(json.loads(inner) if inner.startswith('"') else int(inner))
    return keys


def dag_outputs(
    scope: Scope, *, collect: list[Scope] | None = None
) -> tuple[dict[str, Any], dict[str, list[ArtifactValue]]]:
    """A DAG's output parameters and artifacts; over `collect` (loop iterations) as lists."""
    outputs = scope.component.get("dag", {}).get("outputs", {})
    scopes = collect if collect is not None else [scope]
    parameters: dict[str, Any] = {}
    for name, spec in outputs.get("parameters", {}).items():
        selectors = (
            [spec["valueFromParameter"]]
            if "valueFromParameter" in spec
            else spec.get("valueFromOneof", {}).get("parameterSelectors", [])
        )
        values = [_first_parameter(s, selectors) for s in scopes]
        found = [v for v in values if v is not _MISSING]
        if collect is not None:
            parameters[name] = found
        elif found:
            parameters[name] = found[0]
    artifacts: dict[str, list[ArtifactValue]] = {}
    for name, spec in outputs.get("artifacts", {}).items():
        gathered: list[ArtifactValue] = []
        for s in scopes:
            for selector in spec.get("artifactSelectors", []):
                producer = s.nodes.get(selector["producerSubtask"])
                if producer is not None and selector["outputArtifactKey"] in producer.artifacts:
                    gathered.extend(producer.artifacts[selector["outputArtifactKey"]])
                    break
        if gathered or collect is not None:
            artifacts[name] = gathered
    return parameters, artifacts


_MISSING = object()


def _first_parameter(scope: Scope, selectors: list[Mapping[str, str]]) -> Any:
    for selector in selectors:
        producer = scope.nodes.get(selector["producerSubtask"])
        if producer is not None and selector["outputParameterKey"] in producer.parameters:
            return producer.parameters[selector["outputParameterKey"]]
    return _MISSING


def loop_items(node: Node, parameters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """(the loop item's input name, the items) of a ParallelFor task."""
    iterator = node.spec["parameterIterator"]
    items = iterator["items"]
    if "raw" in items:
        values = json.loads(items["raw"])
    else:
        values = parameters.get(items["inputParameter"])
        if isinstance(values, str):
            values = json.loads(values)
    if not isinstance(values, list):
        raise InvalidArgument(f"task {node.path!r}: ParallelFor items are not a list: {values!r}")
    return str(iterator["itemInput"]), values


def coerce_parameter(name: str, value: Any, parameter_type: str) -> Any:
    """A pipeline argument converted to its declared IR type, or a clear error."""
    try:
        if parameter_type == "NUMBER_INTEGER":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("not an integer")
            return int(value)
        if parameter_type == "NUMBER_DOUBLE":
            if isinstance(value, bool):
                raise ValueError("not a number")
            return float(value)
        if parameter_type == "BOOLEAN":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise ValueError("not a boolean")
            return value
        if parameter_type == "STRING":
            return value if isinstance(value, str) else str(value)
        if parameter_type in ("LIST", "STRUCT") and isinstance(value, str):
            value = json.loads(value)
        if parameter_type == "LIST" and not isinstance(value, list):
            raise ValueError("not a list")
        if parameter_type == "STRUCT" and not isinstance(value, dict):
            raise ValueError("not a dict")
        return value
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"pipeline parameter {name!r} expects {parameter_type}, got {value!r} ({e})"
        ) from e
