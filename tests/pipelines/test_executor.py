"""The executor honours KFP's executor contract for tasks taken from real compiled IR."""

# Components are written as KFP's documentation writes them (typing.List, Optional, list
# defaults), in a module without `from __future__ import annotations`: kfp reads the annotations.
# ruff: noqa: UP006, UP035, UP045, B006

import json
import os
import sys
from pathlib import Path
from typing import Any, List, NamedTuple, Optional

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    InputPath,
    Markdown,
    Metrics,
    Model,
    Output,
    OutputPath,
    SlicedClassificationMetrics,
)

from ratchet.errors import InvalidArgument
from ratchet.pipelines import executor
from ratchet.pipelines.contract import ArtifactValue, TaskCall, TaskFailed

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE)
def scalars(
    i: int,
    f: float,
    s: str,
    b: bool,
    items: list,
    mapping: dict,
    maybe: Optional[str] = None,
    i_default: int = 7,
    f_default: float = 0.5,
    s_default: str = "dflt",
    b_default: bool = False,
    items_default: list = [1, 2],
    mapping_default: dict = {"k": "v"},
) -> NamedTuple(
    "Outputs",
    [("i", int), ("f", float), ("s", str), ("b", bool), ("items", list), ("seen", dict)],
):
    received = {
        "i": i,
        "f": f,
        "s": s,
        "b": b,
        "items": items,
        "mapping": mapping,
        "maybe": maybe,
        "i_default": i_default,
        "f_default": f_default,
        "s_default": s_default,
        "b_default": b_default,
        "items_default": items_default,
        "mapping_default": mapping_default,
    }
    seen = {name: [value, type(value).__name__] for name, value in received.items()}
    return (i + 1, f * 2, s.upper(), not b, [*items, 3], seen)


@dsl.component(base_image=IMAGE)
def halve(x: int) -> float:
    return x // 2  # an int where a float is declared: KFP accepts it


@dsl.component(base_image=IMAGE)
def echo(text: str) -> str:
    return text


@dsl.component(base_image=IMAGE)
def make_artifacts(
    rows: int,
    dataset: Output[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    sliced: Output[SlicedClassificationMetrics],
    page: Output[HTML],
    notes: Output[Markdown],
    blob: Output[Artifact],
):
    import os

    with open(dataset.path, "w") as f:
        f.write("".join(f"{i}\n" for i in range(rows)))
    dataset.metadata["rows"] = rows
    os.makedirs(model.path)
    with open(os.path.join(model.path, "weights.txt"), "w") as f:
        f.write("0.5")
    model.framework = "sklearn"
    metrics.log_metric("accuracy", 0.75)
    roc.log_roc_curve(fpr=[0.0, 0.5, 1.0], tpr=[0.0, 0.8, 1.0], threshold=[1.0, 0.5, 0.0])
    roc.log_confusion_matrix(["cat", "dog"], [[9, 1], [2, 8]])
    # kfp 2.17's SlicedClassificationMetrics log methods fail (no `_sliced_metrics` is ever
    # set), so the metadata is written in the schema those methods would produce.
    sliced.metadata["evaluationSlices"] = [
        {"slice": "overall", "sliceClassificationMetrics": roc.metadata}
    ]
    with open(page.path, "w") as f:
        f.write("<h1>report</h1>")
    with open(notes.path, "w") as f:
        f.write("# notes")
    with open(blob.path, "wb") as f:
        f.write(b"\x00\x01")


@dsl.component(base_image=IMAGE)
def read_artifacts(
    dataset: Input[Dataset],
    model: Input[Model],
    raw: InputPath("Dataset"),
    lines: OutputPath(int),
    copy: OutputPath("Dataset"),
    summary: OutputPath(str),
    ok: OutputPath(bool),
) -> str:
    import shutil

    with open(raw) as f:
        count = len(f.read().splitlines())
    with open(lines, "w") as f:
        f.write(str(count))
    shutil.copyfile(raw, copy)
    with open(summary, "w") as f:
        f.write("a plain string, not JSON")
    with open(ok, "w") as f:
        f.write("True")
    return f"{dataset.metadata['rows']}|{model.framework}|{raw == dataset.path}"


@dsl.component(base_image=IMAGE)
def make_shard(rows: int, shard: Output[Dataset]):
    with open(shard.path, "w") as f:
        f.write("row\n" * rows)
    shard.metadata["rows"] = rows


@dsl.component(base_image=IMAGE)
def count_rows(shards: Input[List[Dataset]]) -> int:
    total = 0
    for shard in shards:
        with open(shard.path) as f:
            total += len(f.read().splitlines())
    return total


@dsl.component(base_image=IMAGE)
def report(status: dsl.PipelineTaskFinalStatus) -> str:
    import json

    return json.dumps(
        [
            status.state,
            status.pipeline_job_resource_name,
            status.pipeline_task_name,
            status.error_code,
            status.error_message,
        ]
    )


@dsl.component(base_image=IMAGE)
def fail_on_positive(x: int) -> int:
    if x > 0:
        raise ValueError(f"x must not be positive, got {x}")
    return x


@dsl.component(base_image=IMAGE)
def exit_with(code: int):
    import sys

    sys.exit(code)


@dsl.component(base_image=IMAGE)
def wrong_type() -> int:
    return "not a number"


@dsl.component(base_image=IMAGE)
def read_env(names: list) -> dict:
    import os

    os.environ["SET_BY_TASK"] = "must not leak"
    os.chdir("/")
    return {name: os.environ.get(name) for name in names}


@dsl.component(base_image=IMAGE)
def chatty():
    import os
    import sys

    print("to stdout")
    print("to stderr", file=sys.stderr)
    os.system("echo from a shell")
    os.write(1, b"straight to fd 1\n")


@dsl.component(base_image=IMAGE)
def module_identity() -> str:
    return str(id(globals()))


@dsl.container_component
def shout(
    text: str,
    out: dsl.OutputPath(str),
    data: dsl.Output[dsl.Dataset],
    suffix: Optional[str] = None,
):
    return dsl.ContainerSpec(
        image="alpine:3.20",
        command=["sh", "-c"],
        args=[
            'printf "%s" "$0" > "$1"; printf data > "$2"; echo "$TONE"; exit "${3#--code=}"',
            dsl.ConcatPlaceholder([text, "!"]),
            out,
            data.path,
            dsl.IfPresentPlaceholder(input_name="suffix", then=["--code=3"], else_=["--code=0"]),
        ],
    )


@dsl.pipeline(name="executor-contract")
def contract_pipeline(n: int = 3):
    exit_task = report()
    with dsl.ExitHandler(exit_task):
        scalars(i=n, f=1.5, s="text", b=True, items=[1, 2], mapping={"k": 1})
        halve(x=n)
        first = echo(text="abc")
        echo(text=f"got {first.output}")
        made = make_artifacts(rows=n)
        read_artifacts(
            dataset=made.outputs["dataset"],
            model=made.outputs["model"],
            raw=made.outputs["dataset"],
        )
        with dsl.ParallelFor([1, 2, 3]) as rows:
            shard = make_shard(rows=rows)
        count_rows(shards=dsl.Collected(shard.outputs["shard"]))
        fail_on_positive(x=n)
        exit_with(code=n)
        wrong_type()
        read_env(names=["FROM_CALL", "FROM_IR", "_KFP_RUNTIME"]).set_env_variable("FROM_IR", "ir")
        chatty()
        module_identity()
        shout(text="hey")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
    compiler.Compiler().compile(contract_pipeline, str(path))
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def make_call(
    spec: dict[str, Any],
    name: str,
    output_dir: Path,
    parameters: dict[str, Any] | None = None,
    artifacts: dict[str, list[ArtifactValue]] | None = None,
    env: dict[str, str] | None = None,
) -> TaskCall:
    component = spec["components"][f"comp-{name}"]
    return TaskCall(
        task_name=name,
        component=component,
        executor=spec["deploymentSpec"]["executors"][component["executorLabel"]],
        parameters=parameters or {},
        artifacts=artifacts or {},
        output_dir=str(output_dir / name),
        env=env or {},
    )


def dag_task(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for component in [spec["root"], *spec["components"].values()]:
        if name in component.get("dag", {}).get("tasks", {}):
            task: dict[str, Any] = component["dag"]["tasks"][name]
            return task
    raise KeyError(name)


def test_tells_python_components_from_container_components(spec: dict[str, Any]) -> None:
    executors = spec["deploymentSpec"]["executors"]
    assert executor.is_python_component(executors["exec-echo"])
    assert not executor.is_python_component(executors["exec-shout"])
    assert not executor.is_python_component({"importer": {"artifactUri": {}}})


def test_parameters_of_every_type_with_defaults_and_optional(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    call = make_call(
        spec,
        "scalars",
        tmp_path,
        {"i": 3, "f": 1.5, "s": "text", "b": True, "items": [1, 2], "mapping": {"k": 1}},
    )

    outputs = executor.run_python_component(call)

    assert outputs.parameters == {
        "i": 4,
        "f": 3.0,
        "s": "TEXT",
        "b": False,
        "items": [1, 2, 3],
        "seen": outputs.parameters["seen"],
    }
    assert [type(outputs.parameters[k]) for k in ("i", "f", "s", "b", "items")] == [
        int,
        float,
        str,
        bool,
        list,
    ]
    seen = outputs.parameters["seen"]
    assert seen["maybe"] == [None, "NoneType"]
    assert seen["i_default"] == [7, "int"]
    assert seen["f_default"] == [0.5, "float"]
    assert seen["s_default"] == ["dflt", "str"]
    assert seen["b_default"] == [False, "bool"]
    assert seen["items_default"][1] == "list" and seen["items_default"][0] == [1, 2]
    assert seen["mapping_default"] == [{"k": "v"}, "dict"]
    assert seen["mapping"] == [{"k": 1}, "dict"]


def test_integer_given_as_float_arrives_as_int(spec: dict[str, Any], tmp_path: Path) -> None:
    call = make_call(
        spec,
        "scalars",
        tmp_path,
        {"i": 3.0, "f": 1, "s": "", "b": False, "items": [], "mapping": {}},
    )

    seen = executor.run_python_component(call).parameters["seen"]

    assert seen["i"] == [3, "int"]


def test_single_return_value_takes_the_declared_type(spec: dict[str, Any], tmp_path: Path) -> None:
    outputs = executor.run_python_component(make_call(spec, "halve", tmp_path, {"x": 5}))

    assert outputs.parameters == {"Output": 2.0}
    assert type(outputs.parameters["Output"]) is float
    assert outputs.artifacts == {}


def test_output_artifacts_carry_files_and_metadata(spec: dict[str, Any], tmp_path: Path) -> None:
    outputs = executor.run_python_component(
        make_call(spec, "make-artifacts", tmp_path, {"rows": 4})
    )

    out = tmp_path / "make-artifacts"
    by_name = {name: values[0] for name, values in outputs.artifacts.items()}
    assert {name: (a.name, a.uri, a.schema_title) for name, a in by_name.items()} == {
        "dataset": ("dataset", str(out / "dataset"), "system.Dataset"),
        "model": ("model", str(out / "model"), "system.Model"),
        "metrics": ("metrics", str(out / "metrics"), "system.Metrics"),
        "roc": ("roc", str(out / "roc"), "system.ClassificationMetrics"),
        "sliced": ("sliced", str(out / "sliced"), "system.SlicedClassificationMetrics"),
        "page": ("page", str(out / "page"), "system.HTML"),
        "notes": ("notes", str(out / "notes"), "system.Markdown"),
        "blob": ("blob", str(out / "blob"), "system.Artifact"),
    }
    assert all(len(values) == 1 for values in outputs.artifacts.values())
    assert (out / "dataset").read_text() == "0\n1\n2\n3\n"
    assert (out / "model" / "weights.txt").read_text() == "0.5"
    assert (out / "page").read_text() == "<h1>report</h1>"
    assert (out / "notes").read_text() == "# notes"
    assert (out / "blob").read_bytes() == b"\x00\x01"
    assert by_name["dataset"].metadata == {"rows": 4}
    assert by_name["model"].metadata == {"framework": "sklearn"}
    assert by_name["metrics"].metadata == {"accuracy": 0.75}
    assert by_name["roc"].metadata["confidenceMetrics"][1] == {
        "falsePositiveRate": 0.5,
        "recall": 0.8,
        "confidenceThreshold": 0.5,
    }
    assert by_name["roc"].metadata["confusionMatrix"]["rows"] == [
        {"row": [9, 1]},
        {"row": [2, 8]},
    ]
    (evaluation,) = by_name["sliced"].metadata["evaluationSlices"]
    assert evaluation == {"slice": "overall", "sliceClassificationMetrics": by_name["roc"].metadata}


def test_input_artifacts_input_path_and_output_path(spec: dict[str, Any], tmp_path: Path) -> None:
    made = executor.run_python_component(make_call(spec, "make-artifacts", tmp_path, {"rows": 3}))
    dataset = made.artifacts["dataset"]
    call = make_call(
        spec,
        "read-artifacts",
        tmp_path,
        artifacts={"dataset": dataset, "model": made.artifacts["model"], "raw": dataset},
    )

    outputs = executor.run_python_component(call)

    assert outputs.parameters == {
        "Output": "3|sklearn|True",
        "lines": 3,
        "summary": "a plain string, not JSON",
        "ok": True,
    }
    (copy,) = outputs.artifacts["copy"]
    assert copy.schema_title == "system.Dataset"
    assert Path(copy.uri).read_text() == "0\n1\n2\n"


def test_list_of_artifacts_from_collected(spec: dict[str, Any], tmp_path: Path) -> None:
    shards = [
        executor.run_python_component(
            make_call(spec, "make-shard", tmp_path / str(rows), {"rows": rows})
        ).artifacts["shard"][0]
        for rows in (1, 2, 3)
    ]
    assert dag_task(spec, "count-rows")["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]

    outputs = executor.run_python_component(
        make_call(spec, "count-rows", tmp_path, artifacts={"shards": shards})
    )

    assert outputs.parameters == {"Output": 6}


@pytest.mark.parametrize(
    "status",
    [
        {  # the field names the brief's runner passes (KFP's proto JSON names)
            "state": "FAILED",
            "pipelineJobResourceName": "run-1",
            "pipelineTaskName": "exit-handler-1",
            "error": {"code": 1, "message": "task fail-on-positive failed"},
        },
        {  # the names kfp.local passes
            "state": "FAILED",
            "pipeline_job_resource_name": "run-1",
            "pipeline_task_name": "exit-handler-1",
            "error": {"code": 1, "message": "task fail-on-positive failed"},
        },
    ],
)
def test_exit_handler_receives_the_final_status(
    spec: dict[str, Any], tmp_path: Path, status: dict[str, Any]
) -> None:
    assert spec["components"]["comp-report"]["inputDefinitions"]["parameters"]["status"] == {
        "isOptional": True,
        "parameterType": "TASK_FINAL_STATUS",
    }

    outputs = executor.run_python_component(make_call(spec, "report", tmp_path, {"status": status}))

    assert json.loads(outputs.parameters["Output"]) == [
        "FAILED",
        "run-1",
        "exit-handler-1",
        1,
        "task fail-on-positive failed",
    ]


def test_f_string_inputs_resolve_against_injected_parameters(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    inputs = dag_task(spec, "echo-2")["inputs"]["parameters"]
    parameters = {
        "text": inputs["text"]["runtimeValue"]["constant"],
        "pipelinechannel--echo-Output": "abc",
    }
    assert "{{$.inputs.parameters['pipelinechannel--echo-Output']}}" in parameters["text"]

    outputs = executor.run_python_component(make_call(spec, "echo-2", tmp_path, parameters))

    assert outputs.parameters == {"Output": "got abc"}


def test_task_name_placeholder_resolves_and_pipeline_level_ones_are_refused(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    named = make_call(
        spec, "echo", tmp_path, {"text": f"I am {dsl.PIPELINE_TASK_NAME_PLACEHOLDER}"}
    )
    assert executor.run_python_component(named).parameters == {"Output": "I am echo"}

    job = make_call(spec, "echo", tmp_path, {"text": dsl.PIPELINE_JOB_NAME_PLACEHOLDER})
    with pytest.raises(TaskFailed, match=r"pipeline_job_name"):
        executor.run_python_component(job)


def test_failure_carries_the_users_traceback(spec: dict[str, Any], tmp_path: Path) -> None:
    call = make_call(spec, "fail-on-positive", tmp_path, {"x": 3})

    with pytest.raises(TaskFailed) as caught:
        executor.run_python_component(call)

    failure = caught.value
    assert failure.task_name == "fail-on-positive"
    assert isinstance(failure.__cause__, ValueError)
    assert "ValueError: x must not be positive, got 3" in failure.detail
    assert 'raise ValueError(f"x must not be positive, got {x}")' in failure.detail
    assert "in fail_on_positive" in failure.detail
    assert "ratchet" not in failure.detail and "kfp/dsl/executor.py" not in failure.detail
    assert str(failure).startswith("task 'fail-on-positive' failed: Traceback")
    assert (
        "ValueError: x must not be positive" in (tmp_path / "fail-on-positive/task.log").read_text()
    )


def test_kfp_executor_errors_are_task_failures(spec: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(TaskFailed, match=r"returned value of type <class 'str'>"):
        executor.run_python_component(make_call(spec, "wrong-type", tmp_path))


def test_sys_exit_nonzero_fails_and_zero_succeeds(spec: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(TaskFailed, match="SystemExit: 3"):
        executor.run_python_component(make_call(spec, "exit-with", tmp_path, {"code": 3}))

    assert executor.run_python_component(make_call(spec, "exit-with", tmp_path, {"code": 0}))


def test_environment_applied_then_restored(
    spec: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FROM_CALL", raising=False)
    monkeypatch.delenv("SET_BY_TASK", raising=False)
    cwd = os.getcwd()
    call = make_call(
        spec,
        "read-env",
        tmp_path,
        {"names": ["FROM_CALL", "FROM_IR", "_KFP_RUNTIME"]},
        env={"FROM_CALL": "call"},
    )

    outputs = executor.run_python_component(call)

    assert outputs.parameters["Output"] == {
        "FROM_CALL": "call",
        "FROM_IR": "ir",  # set_env_variable, from the executor's container env
        "_KFP_RUNTIME": "true",
    }
    assert "FROM_CALL" not in os.environ
    assert "SET_BY_TASK" not in os.environ
    assert os.getcwd() == cwd


def test_output_is_captured_at_the_file_descriptor_level(
    spec: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Markers go straight to the descriptors: what another test may have left in
    # sys.stdout (a progress display's proxy) cannot swallow them.
    streams = sys.stdout, sys.stderr
    os.write(1, b"before the task\n")

    outputs = executor.run_python_component(make_call(spec, "chatty", tmp_path))
    os.write(1, b"after the task\n")
    os.write(2, b"stderr after the task\n")

    assert (sys.stdout, sys.stderr) == streams  # Python's streams are given back too
    assert outputs.log_path == str(tmp_path / "chatty" / "task.log")
    # fd 1 and 2 belong to the whole process while the task runs: a thread another test
    # left behind (a progress display's refresh) may write blanks there too.
    logged = [line.strip() for line in Path(outputs.log_path).read_text().splitlines()]
    assert [line for line in logged if line] == [
        "to stdout",
        "to stderr",
        "from a shell",
        "straight to fd 1",
    ]
    captured = capfd.readouterr()
    assert "before the task\nafter the task\n" in captured.out
    assert "stderr after the task\n" in captured.err
    for line in ("to stdout", "to stderr", "from a shell", "straight to fd 1"):
        assert line not in captured.out + captured.err


def test_component_module_is_loaded_once_per_source(spec: dict[str, Any], tmp_path: Path) -> None:
    first = executor.run_python_component(make_call(spec, "module-identity", tmp_path / "a"))
    second = executor.run_python_component(make_call(spec, "module-identity", tmp_path / "b"))

    assert first.parameters == second.parameters


def test_stale_outputs_of_an_earlier_attempt_are_not_read(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    stale = tmp_path / "halve"
    stale.mkdir()
    (stale / "executor_output.json").write_text('{"parameterValues": {"Output": 99}}')

    outputs = executor.run_python_component(make_call(spec, "halve", tmp_path, {"x": 4}))

    assert outputs.parameters == {"Output": 2.0}


def test_container_component_without_docker_or_podman_is_a_clear_error(
    spec: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(TaskFailed) as caught:
        executor.run_container_component(make_call(spec, "shout", tmp_path, {"text": "hey"}))

    assert caught.value.task_name == "shout"
    assert caught.value.detail == (
        "container components need docker or podman on PATH; neither was found"
    )


def test_placeholders_resolve_as_kfp_does(spec: dict[str, Any], tmp_path: Path) -> None:
    container = spec["deploymentSpec"]["executors"]["exec-shout"]["container"]
    call = make_call(spec, "shout", tmp_path, {"text": "hey"})
    executor_input = executor.build_executor_input(call)
    out = tmp_path / "shout"

    resolved = executor.resolve_placeholders(container["args"], executor_input)

    assert resolved == [
        container["args"][0],
        "hey!",
        str(out / "out"),
        str(out / "data"),
        "--code=0",
    ]
    with_suffix = executor.build_executor_input(
        make_call(spec, "shout", tmp_path, {"text": "hey", "suffix": "?"})
    )
    assert executor.resolve_placeholders(container["args"], with_suffix)[-1] == "--code=3"


def test_placeholder_forms() -> None:
    executor_input = {
        "inputs": {
            "parameterValues": {"s": "text", "n": 3, "d": {"a": 1}},
            "artifacts": {
                "data": {
                    "artifacts": [
                        {"name": "data", "uri": "/in/data", "metadata": {"rows": 2, "tag": "x"}}
                    ]
                }
            },
        },
        "outputs": {
            "parameters": {"p": {"outputFile": "/out/p"}},
            "artifacts": {"m": {"artifacts": [{"name": "m", "uri": "/out/m", "metadata": {}}]}},
            "outputFile": "/out/executor_output.json",
        },
    }
    cases = {
        "{{$}}": json.dumps(executor_input),
        "{{$.inputs.parameters['s']}}": "text",
        "n={{$.inputs.parameters['n']}}": "n=3",
        "{{$.inputs.parameters['d']}}": '{"a": 1}',
        "{{$.inputs.parameters['absent']}}": "null",
        "{{$.inputs.artifacts['data'].path}}": "/in/data",
        "{{$.inputs.artifacts['data'].uri}}": "/in/data",
        "{{$.inputs.artifacts['data'].metadata}}": '{"rows": 2, "tag": "x"}',
        "{{$.inputs.artifacts['data'].metadata['tag']}}": "x",
        "{{$.outputs.artifacts['m'].path}}": "/out/m",
        "{{$.outputs.parameters['p'].output_file}}": "/out/p",
        "{{$.outputs.output_file}}": "/out/executor_output.json",
        "{{$.pipeline_task_name}}": "the-task",
    }
    known = {dsl.PIPELINE_TASK_NAME_PLACEHOLDER: "the-task"}

    assert executor.resolve_placeholders(list(cases), executor_input, known=known) == list(
        cases.values()
    )
    concat = json.dumps({"Concat": ["--n=", "{{$.inputs.parameters['n']}}"]})
    assert executor.resolve_placeholders([concat], executor_input) == ["--n=3"]
    if_absent = json.dumps({"IfPresent": {"InputName": "absent", "Then": ["x"]}})
    assert executor.resolve_placeholders([if_absent, "y"], executor_input) == ["y"]
    for unknown in ("{{$.pipeline_job_name}}", "{{$.inputs.parameters['s'].json_escape[0]}}"):
        with pytest.raises(InvalidArgument, match="placeholder"):
            executor.resolve_placeholders([unknown], executor_input)


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` that records its arguments and runs the container's command on the host."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "json.dump(args, open(os.environ['FAKE_DOCKER_ARGS'], 'w'))\n"
        "i, env, entrypoint = 2, dict(os.environ), None\n"
        "while args[i].startswith('-'):\n"
        "    flag, value = args[i], args[i + 1]\n"
        "    i += 2\n"
        "    if flag == '-e':\n"
        "        name, _, env[name] = value.partition('=')\n"
        "    elif flag == '--entrypoint':\n"
        "        entrypoint = value\n"
        "os.execvpe(entrypoint, [entrypoint, *args[i + 1:]], env)\n"
    )
    script.chmod(0o755)
    record = tmp_path / "docker-args.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_ARGS", str(record))
    return record


def test_container_component_runs_through_docker(
    spec: dict[str, Any], tmp_path: Path, fake_docker: Path
) -> None:
    call = make_call(spec, "shout", tmp_path, {"text": "hey"}, env={"TONE": "loud"})

    outputs = executor.run_container_component(call)

    out = tmp_path / "shout"
    assert outputs.parameters == {"out": "hey!"}
    (data,) = outputs.artifacts["data"]
    assert (data.uri, data.schema_title) == (str(out / "data"), "system.Dataset")
    assert Path(data.uri).read_text() == "data"
    assert Path(outputs.log_path or "").read_text() == "loud\n"
    args = json.loads(fake_docker.read_text())
    assert args[:5] == ["run", "--rm", "-v", f"{out}:{out}", "-e"]
    assert args[5:9] == ["TONE=loud", "--entrypoint", "sh", "alpine:3.20"]
    assert args[9] == "-c"


def test_failing_container_reports_exit_code_and_log(
    spec: dict[str, Any], tmp_path: Path, fake_docker: Path
) -> None:
    call = make_call(spec, "shout", tmp_path, {"text": "hey", "suffix": "!"}, env={"TONE": "sad"})

    with pytest.raises(TaskFailed) as caught:
        executor.run_container_component(call)

    assert "container alpine:3.20 exited with code 3" in caught.value.detail
    assert caught.value.detail.endswith("sad\n")
