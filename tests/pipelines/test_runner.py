"""Pipelines written as in KFP's documentation, run end to end by ratchet's runner.

No `from __future__ import annotations` here: kfp reads component annotations as types.
"""

from pathlib import Path

import pytest
from pipeline_examples import EXAMPLES, example

from ratchet import pipelines
from ratchet.config import Config, load_config
from ratchet.errors import InvalidArgument, NotFound
from ratchet.metadata import MetadataStore
from ratchet.pipelines import TaskState
from ratchet.pipelines.recording import PIPELINE_RUN, TASK


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(home=tmp_path / "home")


def test_parameters_in_and_out(config: Config) -> None:
    run = pipelines.run(example("hello").hello_pipeline, {"recipient": "ratchet"}, config=config)
    assert run.state == "SUCCEEDED"
    assert run.outputs == {"Output": "Hello, ratchet!"}
    assert run.tasks == {"say-hello": TaskState.COMPLETE}


def test_artifacts_metadata_and_named_tuples(config: Config) -> None:
    run = pipelines.run(example("artifacts").artifacts_pipeline, {"rows": 5}, config=config)
    assert run.state == "SUCCEEDED", run.errors
    assert run.outputs["Output"] == "slope 2.0 from 5 rows"
    with MetadataStore.from_config(config) as store:
        models = store.find_artifacts(type="system.Model")
        assert len(models) == 1
        assert models[0].custom_properties["metadata"] == {"learning_rate": 0.1}
        assert models[0].sha256 is not None
        metrics = store.find_artifacts(type="system.Metrics")
        assert metrics[0].custom_properties["metadata"] == {"slope": 2.0}


def test_conditions_and_loops_with_fan_in(config: Config) -> None:
    module = example("control_flow")
    run = pipelines.run(module.control_flow_pipeline, {"value": 4}, config=config)
    assert run.state == "SUCCEEDED", run.errors
    assert run.outputs == {"Output": 1 + 4 + 9 + 16}
    announced = {p: s for p, s in run.tasks.items() if "announce" in p}
    assert sorted(s.value for s in announced.values()) == ["COMPLETE"]  # exactly one branch
    squares = [p for p in run.tasks if p.endswith("/square")]
    assert len(squares) == 4


def test_failure_skips_downstream_and_runs_the_exit_handler(config: Config) -> None:
    run = pipelines.run(example("exit_handler").exit_handler_pipeline, config=config)
    assert run.state == "FAILED"
    tasks = {p.rsplit("/", 1)[-1]: s for p, s in run.tasks.items()}
    assert tasks["fail-when"] == TaskState.FAILED
    assert tasks["after-failure"] == TaskState.SKIPPED
    assert tasks["independent"] == TaskState.COMPLETE
    assert tasks["clean-up"] == TaskState.COMPLETE
    failure = next(e for p, e in run.errors.items() if p.endswith("fail-when"))
    assert "ValueError: the body failed on purpose" in failure
    assert "fail_when" in failure  # the user's frame, by function name


def test_nested_pipelines_and_retries(config: Config, tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    run = pipelines.run(
        example("nested").nested_pipeline, {"marker": str(marker), "failures": 2}, config=config
    )
    assert run.state == "SUCCEEDED", run.errors
    assert run.outputs == {"Output": 1.0 + 2 + 2 + 2 + 2}
    assert marker.read_text() == "3"


def test_cache_hits_across_runs_and_misses_on_a_code_change(config: Config, tmp_path: Path) -> None:
    module = example("artifacts")
    first = pipelines.run(module.artifacts_pipeline, config=config)
    second = pipelines.run(module.artifacts_pipeline, config=config)
    assert set(second.tasks.values()) == {TaskState.CACHED}
    assert second.outputs == first.outputs
    uncached = pipelines.run(module.artifacts_pipeline, config=config, enable_caching=False)
    assert set(uncached.tasks.values()) == {TaskState.COMPLETE}
    source = (EXAMPLES / "artifacts.py").read_text()
    changed = tmp_path / "changed.py"
    changed.write_text(source.replace('return f"slope', 'return f"Slope'))
    third = pipelines.run(changed, config=config)
    assert third.tasks["make-data"] == TaskState.CACHED
    assert third.tasks["train"] == TaskState.CACHED
    assert third.tasks["report"] == TaskState.COMPLETE
    assert third.outputs["Output"].startswith("Slope")


def test_lineage_reaches_back_to_the_pipeline_parameters(config: Config) -> None:
    run = pipelines.run(example("artifacts").artifacts_pipeline, {"rows": 7}, config=config)
    with MetadataStore.from_config(config) as store:
        context = store.find_context(PIPELINE_RUN, run.name)
        assert context is not None and context.properties["arguments"]["rows"] == 7
        model = store.find_artifacts(type="system.Model")[0]
        graph = store.lineage(artifact_id=model.id, direction="upstream", depth=10)
        types = {a.type for a in graph.artifacts}
        assert {"system.Model", "system.Dataset", "PipelineParameters"} <= types
        executions = store.find_executions(type=TASK, context=context.id)
        assert {e.properties["task"] for e in executions} == {"make-data", "train", "report"}
        assert all(e.start_time and e.end_time for e in executions)


def test_bad_arguments_are_refused_before_anything_runs(config: Config) -> None:
    hello = example("hello").hello_pipeline
    with pytest.raises(InvalidArgument, match="no parameter 'nobody'"):
        pipelines.run(hello, {"nobody": 1}, config=config)
    with pytest.raises(InvalidArgument, match="expects NUMBER_INTEGER"):
        pipelines.run(example("artifacts").artifacts_pipeline, {"rows": "many"}, config=config)
    with pytest.raises(NotFound):
        pipelines.run(Path("/nonexistent/pipeline.py"), config=config)
    assert not (config.home / "metadata.db").exists()


def test_compile_writes_kfp_ir_that_runs(config: Config, tmp_path: Path) -> None:
    output = tmp_path / "control.yaml"
    spec = pipelines.compile_pipeline(EXAMPLES / "control_flow.py", output)
    assert output.read_text().startswith("# PIPELINE DEFINITION")
    run = pipelines.run(output, {"value": 3}, config=config)
    assert run.state == "SUCCEEDED"
    assert run.version == spec.version


def test_missing_packages_to_install_are_refused_at_submit(config: Config, tmp_path: Path) -> None:
    from kfp import dsl

    @dsl.component(base_image="python:3.11", packages_to_install=["numpy>=1.0", "no-such-pkg==1.0"])
    def uses_packages() -> int:
        return 1

    @dsl.pipeline(name="needs-packages")
    def needs_packages() -> None:
        uses_packages()

    with pytest.raises(InvalidArgument, match=r"no-such-pkg==1\.0, not installed"):
        pipelines.run(needs_packages, config=config)


def test_resume_reruns_only_what_did_not_complete(config: Config, tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    nested = example("nested").nested_pipeline
    failed = pipelines.run(
        nested, {"marker": str(marker), "failures": 5}, config=config, enable_caching=False
    )
    assert failed.state == "FAILED"
    assert failed.tasks["flaky"] == TaskState.FAILED
    assert marker.read_text() == "4"  # one try and three retries
    resumed = pipelines.resume(failed.name, config=config)
    assert resumed.state == "SUCCEEDED", resumed.errors
    assert resumed.tasks["flaky"] == TaskState.COMPLETE
    assert marker.read_text() == "6"
    reused = {p: s for p, s in resumed.tasks.items() if p != "flaky" and "/" in p}
    assert reused and set(reused.values()) == {TaskState.CACHED}
    assert resumed.outputs == {"Output": 9.0}
    with pytest.raises(NotFound):
        pipelines.resume("no-such-run", config=config)
