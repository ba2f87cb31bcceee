"""Single KFP features, one pipeline each: importer, env variables, old-style Condition,
.after(), the ParallelFor parallelism limit, per-task caching, container components.

No `from __future__ import annotations` here: kfp reads component annotations as types.
"""

from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input

from ratchet import pipelines
from ratchet.config import Config, load_config
from ratchet.pipelines import TaskState


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(home=tmp_path / "home")


@dsl.component(base_image="python:3.11")
def read_text(data: Input[Dataset]) -> str:
    return open(data.path).read()


@dsl.component(base_image="python:3.11")
def read_env() -> str:
    import os

    return os.environ.get("GREETING", "unset")


@dsl.component(base_image="python:3.11")
def stamp(path: str, label: str) -> str:
    import time

    start = time.time()
    time.sleep(0.3)
    with open(path, "a") as f:
        f.write(f"{label} {start} {time.time()}\n")
    return label


@dsl.component(base_image="python:3.11")
def count_calls(path: str) -> int:
    import os

    calls = 1
    if os.path.exists(path):
        with open(path) as f:
            calls += int(f.read())
    with open(path, "w") as f:
        f.write(str(calls))
    return calls


def test_importer_brings_an_existing_file_in(config: Config, tmp_path: Path) -> None:
    source = tmp_path / "data.txt"
    source.write_text("imported bytes")

    @dsl.pipeline(name="importer-pipeline")
    def importer_pipeline(uri: str) -> str:
        imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False)
        return read_text(data=imported.output).output

    run = pipelines.run(importer_pipeline, {"uri": str(source)}, config=config)
    assert run.state == "SUCCEEDED", run.errors
    assert run.outputs == {"Output": "imported bytes"}


def test_set_env_variable_reaches_the_component(config: Config) -> None:
    @dsl.pipeline(name="env-pipeline")
    def env_pipeline() -> str:
        return read_env().set_env_variable("GREETING", "hej").output

    run = pipelines.run(env_pipeline, config=config)
    assert run.outputs == {"Output": "hej"}


def test_old_style_condition_and_after(config: Config, tmp_path: Path) -> None:
    log = tmp_path / "order.log"

    @dsl.pipeline(name="condition-after")
    def condition_after(path: str, go: int):
        first = stamp(path=path, label="first")
        second = stamp(path=path, label="second").after(first)
        with pytest.warns(DeprecationWarning), dsl.Condition(go > 1):
            stamp(path=path, label="conditional").after(second)

    run = pipelines.run(condition_after, {"path": str(log), "go": 2}, config=config)
    assert run.state == "SUCCEEDED", run.errors
    labels = [line.split()[0] for line in log.read_text().splitlines()]
    assert labels == ["first", "second", "conditional"]
    log.unlink()
    skipped = pipelines.run(
        condition_after, {"path": str(log), "go": 0}, config=config, enable_caching=False
    )
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["first", "second"]
    assert TaskState.SKIPPED in skipped.tasks.values()


def test_parallelism_limit_is_honoured(config: Config, tmp_path: Path) -> None:
    log = tmp_path / "loop.log"

    @dsl.pipeline(name="limited-loop")
    def limited_loop(path: str):
        with dsl.ParallelFor(["a", "b", "c", "d"], parallelism=1) as item:
            stamp(path=path, label=item)

    run = pipelines.run(limited_loop, {"path": str(log)}, config=config, max_workers=2)
    assert run.state == "SUCCEEDED", run.errors
    spans = sorted(
        (float(s), float(e)) for _, s, e in (ln.split() for ln in log.read_text().splitlines())
    )
    assert len(spans) == 4
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(3)), spans  # never two at once


def test_independent_tasks_overlap(config: Config, tmp_path: Path) -> None:
    log = tmp_path / "parallel.log"

    @dsl.pipeline(name="side-by-side")
    def side_by_side(path: str):
        stamp(path=path, label="left")
        stamp(path=path, label="right")

    pipelines.run(side_by_side, {"path": str(log)}, config=config, max_workers=2)
    (_, s1, e1), (_, s2, e2) = (ln.split() for ln in log.read_text().splitlines())
    assert float(s2) < float(e1) and float(s1) < float(e2)  # the two ran at the same time


def test_caching_can_be_turned_off_per_task(config: Config, tmp_path: Path) -> None:
    counter = tmp_path / "calls"

    @dsl.pipeline(name="per-task-cache")
    def per_task_cache(path: str) -> int:
        return count_calls(path=path).set_caching_options(False).output

    first = pipelines.run(per_task_cache, {"path": str(counter)}, config=config)
    second = pipelines.run(per_task_cache, {"path": str(counter)}, config=config)
    assert (first.outputs, second.outputs) == ({"Output": 1}, {"Output": 2})
    assert second.tasks == {"count-calls": TaskState.COMPLETE}


def test_container_component_without_a_running_engine_fails_naming_the_task(
    config: Config,
) -> None:
    @dsl.container_component
    def echo(text: str):
        return dsl.ContainerSpec(image="alpine", command=["echo"], args=[text])

    @dsl.pipeline(name="container-pipeline")
    def container_pipeline():
        echo(text="hi")

    run = pipelines.run(container_pipeline, config=config)
    assert run.state == "FAILED"
    assert run.tasks == {"echo": TaskState.FAILED}
    # No engine on PATH, or a docker client with no daemon behind it: either way it says so.
    assert "docker" in run.errors["echo"] or "podman" in run.errors["echo"]


def test_a_condition_that_cannot_be_evaluated_fails_the_run_and_records_it(
    config: Config, tmp_path: Path
) -> None:
    from ratchet.errors import InvalidArgument
    from ratchet.metadata import MetadataStore
    from ratchet.pipelines.recording import PIPELINE_RUN

    @dsl.pipeline(name="odd-condition")
    def odd_condition(n: int, path: str):
        # kfp compiles an int compared with a text constant into text CEL cannot parse.
        with dsl.If(n == "4"):
            stamp(path=path, label="never")

    with pytest.raises(InvalidArgument, match="condition"):
        pipelines.run(odd_condition, {"n": 4, "path": str(tmp_path / "x")}, config=config)
    with MetadataStore.from_config(config) as store:
        [run] = store.find_contexts(type=PIPELINE_RUN)
        assert run.properties["state"] == "FAILED"
        assert "condition" in str(run.properties["error"])
