"""What the pipeline runner hands a task and gets back: KFP's executor contract as records.

Owns `TaskCall` (one task, its inputs resolved), `ArtifactValue` (an artifact
as KFP's executor sees it) and `TaskOutputs`. How a call is executed lives in
`executor` and `workers`; how calls are planned from the IR in `runner`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ratchet.errors import RatchetError


@dataclass(frozen=True)
class ArtifactValue:
    """An artifact flowing between tasks: KFP's runtime artifact with a local `uri`."""

    name: str
    uri: str
    schema_title: str = "system.Artifact"
    schema_version: str = "0.0.1"
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskCall:
    """One task to execute, with every input resolved to a value.

    `component` is the task's ComponentSpec and `executor` its deploymentSpec executor,
    both as dicts in the IR's JSON field names (camelCase). Outputs go under `output_dir`.
    """

    task_name: str
    component: Mapping[str, Any]
    executor: Mapping[str, Any]
    parameters: Mapping[str, Any]
    artifacts: Mapping[str, Sequence[ArtifactValue]]
    output_dir: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskOutputs:
    """What a task produced: output parameter values and output artifacts (with metadata)."""

    parameters: Mapping[str, Any]
    artifacts: Mapping[str, Sequence[ArtifactValue]]
    log_path: str | None = None


class TaskFailed(RatchetError):
    """A task's own code failed; the message names the task and carries its traceback."""

    def __init__(self, task_name: str, detail: str) -> None:
        super().__init__(f"task {task_name!r} failed: {detail}")
        self.task_name = task_name
        self.detail = detail

    def __reduce__(self) -> tuple[type[TaskFailed], tuple[str, str]]:
        # Rebuilt from both fields, so it crosses process boundaries intact.
        return (type(self), (self.task_name, self.detail))
