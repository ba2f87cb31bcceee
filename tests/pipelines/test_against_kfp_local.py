"""ratchet against kfp.local: the same KFP pipelines give the same outputs and artifacts.

Each pipeline runs with `kfp.local` (SubprocessRunner in this environment, the reference
KFP ships) and with `ratchet.pipelines.run`. The tests compare the run's state, the pipeline
outputs (parameters with their types, artifacts by metadata and file contents), which tasks
failed, and task by task what every successful task produced: its component, output
parameters, and each output artifact's metadata and file contents. kfp.local's task
outputs are taken where its orchestrators hand them over (`task_executor.execute_single_task`);
ratchet's come from its metadata store.

kfp.local keeps its configuration in a module-level singleton, so each test initialises it
with a pipeline root of its own and clears it afterwards. It takes 0.5-1 s a task, so the
pipelines are small.
"""

# No `from __future__ import annotations`: kfp reads the annotations of the component below.
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset, Output
from kfp.local import config as kfp_config
from kfp.local import status as kfp_status
from kfp.local.orchestrator import task_executor
from pipeline_examples import example

from ratchet import pipelines
from ratchet.config import Config, load_config
from ratchet.metadata import EventType, ExecutionState, MetadataStore
from ratchet.pipelines.contract import ArtifactValue
from ratchet.pipelines.recording import PIPELINE_RUN, TASK


@dataclass(frozen=True)
class Outcome:
    """One system's run of one pipeline, in a form both systems can be compared in."""

    state: str  # "SUCCEEDED" or "FAILED"
    outputs: dict[str, tuple[str, Any]]  # pipeline parameter outputs as (type name, value)
    artifacts: str  # pipeline output artifacts: metadata and contents, canonical JSON
    tasks: list[str]  # every successful leaf task, canonical JSON, sorted
    failed: list[str]  # components of the leaf tasks that failed, sorted


def _contents(path: Path) -> Any:
    """A file's text, a folder's files by relative path, or None when nothing was written."""
    if path.is_dir():
        return {str(p.relative_to(path)): _contents(p) for p in sorted(path.rglob("*"))}
    if path.is_file():
        return path.read_bytes().decode(errors="backslashreplace")
    return None


def _numbers_as_floats(value: Any) -> Any:
    # kfp.local carries values in protobuf Structs, which keep no ints (12 -> 12.0) and it
    # restores only top-level integer outputs, so inside a task record a number is compared
    # by value; pipeline outputs are compared with their types.
    if isinstance(value, bool) or not isinstance(value, int | float | dict | list):
        return value
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    return float(value)


def _artifacts(artifacts: Mapping[str, list[tuple[Mapping[str, Any], str]]]) -> dict[str, Any]:
    return {
        name: [{"metadata": dict(m), "contents": _contents(Path(uri))} for m, uri in values]
        for name, values in artifacts.items()
    }


def _task_record(
    component: str,
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, list[tuple[Mapping[str, Any], str]]],
) -> str:
    record = {
        "component": component,
        "parameters": dict(parameters),
        "artifacts": _artifacts(artifacts),
    }
    return json.dumps(_numbers_as_floats(record), sort_keys=True)


def _output_artifacts(outputs: Mapping[str, Any]) -> str:
    """A run's output artifacts (objects with `uri` and `metadata`, one or a list) as JSON."""
    found = {
        name: [(a.metadata, a.uri) for a in (value if isinstance(value, list) else [value])]
        for name, value in outputs.items()
        if _is_artifacts(value)
    }
    return json.dumps(_numbers_as_floats(_artifacts(found)), sort_keys=True)


def _is_artifacts(value: Any) -> bool:
    first = value[0] if isinstance(value, list) and value else value
    return isinstance(first, dsl.Artifact | ArtifactValue)


def _typed(outputs: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """Parameter outputs with their types; artifacts are compared by `_output_artifacts`."""
    return {
        name: (type(value).__name__, value)
        for name, value in outputs.items()
        if not _is_artifacts(value)
    }


# ---- kfp.local ----------------------------------------------------------------------------


@pytest.fixture
def kfp_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Outcome]]:
    """Runs a pipeline with kfp.local, each run under a pipeline root of its own."""
    finished: list[tuple[str, dict[str, Any], kfp_status.Status]] = []
    execute = task_executor.execute_single_task

    def recording(**kwargs: Any) -> tuple[dict[str, Any], kfp_status.Status]:
        outputs, state = execute(**kwargs)
        finished.append((kwargs["task_spec"].component_ref.name, dict(outputs), state))
        return outputs, state

    monkeypatch.setattr(task_executor, "execute_single_task", recording)
    count = itertools.count()

    def run(pipeline: Any, **arguments: Any) -> Outcome:
        number = next(count)
        workspace = tmp_path / f"kfp-workspace-{number}"
        workspace.mkdir()
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(tmp_path / f"kfp-root-{number}"),
            workspace_root=str(workspace),
            raise_on_error=False,
        )
        finished.clear()
        task = pipeline(**arguments)
        tasks, failed = [], []
        for component, outputs, state in finished:
            if state != kfp_status.Status.SUCCESS:
                failed.append(component)
                continue
            parameters = {k: v for k, v in outputs.items() if not _is_artifacts(v)}
            artifacts = {
                k: [(a.metadata, a.uri) for a in (v if isinstance(v, list) else [v])]
                for k, v in outputs.items()
                if _is_artifacts(v)
            }
            tasks.append(_task_record(component, parameters, artifacts))
        return Outcome(
            state="FAILED" if failed else "SUCCEEDED",
            outputs=_typed(task.outputs),
            artifacts=_output_artifacts(task.outputs),
            tasks=sorted(tasks),
            failed=sorted(failed),
        )

    try:
        yield run
    finally:
        kfp_config.LocalExecutionConfig.instance = None


# ---- ratchet ------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(home=tmp_path / "home")


def run_ratchet(config: Config, pipeline: Any, **arguments: Any) -> Outcome:
    """Runs a pipeline with ratchet and reads each task's outputs back from the store."""
    run = pipelines.run(pipeline, arguments, config=config)
    assert run.state in ("SUCCEEDED", "FAILED"), run.errors
    tasks, failed = [], []
    with MetadataStore.from_config(config) as store:
        context = store.find_context(PIPELINE_RUN, run.name)
        assert context is not None and context.id is not None
        for execution in store.find_executions(type=TASK, context=context.id):
            path = str(execution.properties["task"])
            if any(other.startswith(f"{path}/") for other in run.tasks):
                continue  # a DAG (a nested pipeline, a condition, a loop), not a task
            component = str(execution.properties["component"])
            if execution.state == ExecutionState.FAILED:
                failed.append(component)
            if execution.state not in (ExecutionState.COMPLETE, ExecutionState.CACHED):
                continue
            assert execution.id is not None
            artifacts: dict[str, list[tuple[Mapping[str, Any], str]]] = {}
            for event in store.find_events(execution_ids=[execution.id]):
                if event.type != EventType.OUTPUT:
                    continue
                artifact = store.get_artifact(event.artifact_id)
                metadata = artifact.custom_properties.get("metadata", {})
                assert isinstance(metadata, dict)
                name = (event.path or "").split("[", 1)[0]
                artifacts.setdefault(name, []).append((metadata, artifact.uri))
            parameters = execution.custom_properties.get("outputs", {})
            assert isinstance(parameters, dict)
            tasks.append(_task_record(component, parameters, artifacts))
    return Outcome(
        state=run.state,
        outputs=_typed(run.outputs),
        artifacts=_output_artifacts(run.outputs),
        tasks=sorted(tasks),
        failed=sorted(failed),
    )


def assert_same(ours: Outcome, theirs: Outcome) -> None:
    assert ours.state == theirs.state
    assert ours.outputs == theirs.outputs
    assert ours.artifacts == theirs.artifacts
    assert ours.failed == theirs.failed
    assert ours.tasks == theirs.tasks


# ---- the pipelines --------------------------------------------------------------------------


def test_hello(kfp_local: Callable[..., Outcome], config: Config) -> None:
    pipeline = example("hello").hello_pipeline
    theirs = kfp_local(pipeline, recipient="kfp")
    assert theirs.outputs == {"Output": ("str", "Hello, kfp!")}
    assert_same(run_ratchet(config, pipeline, recipient="kfp"), theirs)


def test_artifacts_metadata_and_named_tuples(
    kfp_local: Callable[..., Outcome], config: Config
) -> None:
    pipeline = example("artifacts").artifacts_pipeline
    theirs = kfp_local(pipeline, rows=4, learning_rate=0.5)
    ours = run_ratchet(config, pipeline, rows=4, learning_rate=0.5)
    assert_same(ours, theirs)
    assert ours.outputs == {"Output": ("str", "slope 2.0 from 4 rows")}
    with MetadataStore.from_config(config) as store:
        (dataset,) = store.find_artifacts(type="system.Dataset")
        assert Path(dataset.uri).read_text() == "0,1\n1,3\n2,5\n3,7\n"
    assert any('"contents": "0,1\\n1,3\\n2,5\\n3,7\\n"' in t for t in theirs.tasks)


@pytest.mark.parametrize(
    ("value", "items", "branch"),
    [(3, [1, 2], "heads"), (4, [3], "tails"), (5, [2], "edge")],
    ids=["if", "elif", "else"],
)
def test_control_flow_takes_each_branch(
    kfp_local: Callable[..., Outcome], config: Config, value: int, items: list[int], branch: str
) -> None:
    pipeline = example("control_flow").control_flow_pipeline
    theirs = kfp_local(pipeline, value=value, items=items)
    ours = run_ratchet(config, pipeline, value=value, items=items)
    # kfp.local hands `total` the collected squares as floats ([1.0, 4.0]: it keeps them in
    # protobuf Values), so `total`'s `-> int` check fails there and kfp.local's run fails.
    # ratchet passes the ints the squares returned. Every other task must agree.
    assert theirs.failed == ["comp-total"]
    assert ours.state == "SUCCEEDED" and ours.failed == []
    assert ours.outputs == {"Output": ("int", sum(i * i for i in items))}
    assert [t for t in ours.tasks if '"comp-total"' not in t] == theirs.tasks
    announced = [t for t in ours.tasks if '"comp-announce' in t]
    assert len(announced) == 1 and branch in announced[0]


def test_nested_pipelines_with_a_retry(
    kfp_local: Callable[..., Outcome], config: Config, tmp_path: Path
) -> None:
    pipeline = example("nested").nested_pipeline
    theirs = kfp_local(pipeline, a=0.5, marker=str(tmp_path / "kfp-attempts"), failures=1)
    ours = run_ratchet(config, pipeline, a=0.5, marker=str(tmp_path / "attempts"), failures=1)
    assert_same(ours, theirs)
    assert ours.outputs == {"Output": ("float", 0.5 + 4 * 2.0)}
    assert (tmp_path / "attempts").read_text() == (tmp_path / "kfp-attempts").read_text() == "2"


def test_exit_handler_after_a_failure(kfp_local: Callable[..., Outcome], config: Config) -> None:
    pipeline = example("exit_handler").exit_handler_pipeline
    theirs = kfp_local(pipeline, fail=True)
    ours = run_ratchet(config, pipeline, fail=True)
    assert_same(ours, theirs)
    assert ours.failed == ["comp-fail-when"]
    assert any("exit-handler-1: FAILED" in t for t in ours.tasks)


def test_loop_over_dicts_with_item_fields(
    kfp_local: Callable[..., Outcome], config: Config
) -> None:
    pipeline = example("loop_over_dicts").loop_over_dicts_pipeline
    theirs = kfp_local(pipeline)
    assert_same(run_ratchet(config, pipeline), theirs)
    assert theirs.outputs == {"Output": ("str", "tee:M, polo:L")}


def test_one_of_the_branches(kfp_local: Callable[..., Outcome], config: Config) -> None:
    pipeline = example("one_of").one_of_pipeline
    theirs = kfp_local(pipeline, seed=1)
    assert_same(run_ratchet(config, pipeline, seed=1), theirs)
    assert theirs.outputs == {"Output": ("str", "The result is: Got tails!")}


def test_paths_and_metrics(kfp_local: Callable[..., Outcome], config: Config) -> None:
    pipeline = example("paths_and_metrics").paths_and_metrics_pipeline
    theirs = kfp_local(pipeline, count=9)
    ours = run_ratchet(config, pipeline, count=9)
    assert_same(ours, theirs)
    assert ours.outputs == {"Output": ("float", 5 / 9)}
    with MetadataStore.from_config(config) as store:
        (classification,) = store.find_artifacts(type="system.ClassificationMetrics")
    metadata = classification.custom_properties["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["confusionMatrix"]["rows"] == [{"row": [3, 3]}, {"row": [1, 2]}]


@dsl.component(base_image="python:3.11")
def write_text(text: str, data: Output[Dataset]) -> None:
    with open(data.path, "w") as f:
        f.write(text)


@dsl.pipeline(name="artifact-output-pipeline")
def artifact_output_pipeline(text: str = "hello") -> Dataset:
    return write_text(text=text).outputs["data"]


def test_a_pipeline_output_artifact(kfp_local: Callable[..., Outcome], config: Config) -> None:
    theirs = kfp_local(artifact_output_pipeline, text="out")
    assert json.loads(theirs.artifacts) == {"Output": [{"metadata": {}, "contents": "out"}]}
    assert_same(run_ratchet(config, artifact_output_pipeline, text="out"), theirs)
