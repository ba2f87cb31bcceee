"""Execute one KFP task in this process, honouring KFP's executor contract.

Owns the translation of a `TaskCall` into KFP's ExecutorInput, running a lightweight
Python component through kfp's own `kfp.dsl.executor.Executor` (as the
`kfp.dsl.executor_main` in a KFP container would), running a container component
with docker or podman, and reading the task's outputs back into `TaskOutputs`.
It does not plan tasks or resolve their inputs (`runner`), nor keep warm processes
(`workers`). A Python task touches process-wide state (the environment, file
descriptors 1 and 2, `sys.stdout`), so tasks in one process run one at a time.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
import threading
import traceback
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kfp import dsl
from kfp.dsl import executor as kfp_executor

from ratchet.errors import InvalidArgument
from ratchet.pipelines.contract import ArtifactValue, TaskCall, TaskFailed, TaskOutputs

EXECUTOR_OUTPUT = "executor_output.json"
TASK_LOG = "task.log"
NO_CONTAINER_ENGINE = "container components need docker or podman on PATH; neither was found"

_TASK_LOCK = threading.Lock()
_MODULES: dict[str, types.ModuleType] = {}  # component source sha256 -> loaded module
_PLACEHOLDER = re.compile(r"\{\{\$(.*?)\}\}")
_STEP = re.compile(r"\.(\w+)|\['([^']*)'\]")


def is_python_component(executor: Mapping[str, Any]) -> bool:
    """Whether a deploymentSpec executor is a lightweight Python component (`@dsl.component`)."""
    return _component_source(executor) is not None


def run_task(call: TaskCall) -> TaskOutputs:
    """Run a Python or container task, whichever `call.executor` is."""
    if is_python_component(call.executor):
        return run_python_component(call)
    return run_container_component(call)


def run_python_component(call: TaskCall) -> TaskOutputs:
    """Run a lightweight Python component in this process with kfp's own executor.

    The component's module is loaded once per process and source; its output
    (stdout, stderr, C-level writes and subprocesses included) goes to
    `<output_dir>/task.log`. A failure raises `TaskFailed` carrying the user's traceback.
    """
    found = _component_source(call.executor)
    if found is None:
        raise InvalidArgument(f"task {call.task_name!r} is not a lightweight Python component")
    source, function_name = found
    digest = hashlib.sha256(source.encode()).hexdigest()
    filename = f"<ephemeral_component {digest[:12]}>"
    executor_input = build_executor_input(call)
    log_path = _prepare_output_dir(executor_input)
    env = {**_container_env(call.executor), **call.env, "_KFP_RUNTIME": "true"}
    with _TASK_LOCK, _task_environment(env), _captured_output(log_path):
        try:
            module = _load_module(source, digest, filename)
            function = getattr(module, function_name)
            kfp_executor.Executor(executor_input, function).execute()
        except (Exception, SystemExit) as e:
            if not (isinstance(e, SystemExit) and e.code in (None, 0)):
                detail = _user_traceback(e, filename, source)
                print(detail, end="", file=sys.stderr)
                raise TaskFailed(call.task_name, detail) from e
    return _read_outputs(call, executor_input, log_path)


def run_container_component(call: TaskCall) -> TaskOutputs:
    """Run a container component with docker (or podman), as KFP would run its pod.

    `command` replaces the image's entrypoint and `args` follow, placeholders resolved;
    the output directory and local input artifacts are mounted at the same paths.
    """
    engine = shutil.which("docker") or shutil.which("podman")
    if engine is None:
        raise TaskFailed(call.task_name, NO_CONTAINER_ENGINE)
    container = call.executor.get("container")
    if not isinstance(container, Mapping):
        raise InvalidArgument(f"task {call.task_name!r} has no container to run")
    executor_input = build_executor_input(call)
    log_path = _prepare_output_dir(executor_input)
    known = _known(call)
    try:
        command = resolve_placeholders(container.get("command", []), executor_input, known=known)
        args = resolve_placeholders(container.get("args", []), executor_input, known=known)
    except InvalidArgument as e:
        raise TaskFailed(call.task_name, str(e)) from e
    output_dir = os.path.dirname(executor_input["outputs"]["outputFile"])
    argv = [engine, "run", "--rm", "-v", f"{output_dir}:{output_dir}"]
    for path in sorted({a.uri for arts in call.artifacts.values() for a in arts}):
        if os.path.isabs(path) and not path.startswith(output_dir + os.sep):
            argv += ["-v", f"{path}:{path}:ro"]
    for name, value in {**_container_env(call.executor), **call.env}.items():
        argv += ["-e", f"{name}={value}"]
    if command:
        argv += ["--entrypoint", command[0]]
    argv += [str(container["image"]), *command[1:], *args]
    with open(log_path, "wb") as log:
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = "".join(log.readlines()[-20:])
        detail = f"container {container['image']} exited with code {code}; log {log_path}"
        raise TaskFailed(call.task_name, f"{detail}\n{tail}" if tail else detail)
    return _read_outputs(call, executor_input, log_path)


def build_executor_input(call: TaskCall) -> dict[str, Any]:
    """KFP's ExecutorInput for a call, as a JSON dict.

    Missing optional parameters take the component's defaults, integers arrive as
    `int`, and placeholders inside parameter values (f-strings over upstream outputs)
    are resolved, as KFP's driver does.
    """
    if not call.output_dir:
        raise InvalidArgument(f"task {call.task_name!r} has no output directory")
    output_dir = os.path.abspath(call.output_dir)

    def at(name: str) -> str:
        return os.path.join(output_dir, name)

    inputs = call.component.get("inputDefinitions", {})
    outputs = call.component.get("outputDefinitions", {})
    values = copy.deepcopy(dict(call.parameters))
    for name, spec in inputs.get("parameters", {}).items():
        if name not in values and "defaultValue" in spec:
            values[name] = copy.deepcopy(spec["defaultValue"])
        value = values.get(name)
        if spec.get("parameterType") == "NUMBER_INTEGER" and isinstance(value, float):
            values[name] = int(value) if value.is_integer() else value
    executor_input: dict[str, Any] = {
        "inputs": {
            "parameterValues": values,
            "artifacts": {
                name: {"artifacts": [_runtime_artifact(a) for a in arts]}
                for name, arts in call.artifacts.items()
                if arts
            },
        },
        "outputs": {
            "parameters": {
                name: {"outputFile": at(name)} for name in outputs.get("parameters", {})
            },
            "artifacts": {
                name: {"artifacts": [_runtime_artifact(ArtifactValue(name, at(name)), spec)]}
                for name, spec in outputs.get("artifacts", {}).items()
            },
            "outputFile": at(EXECUTOR_OUTPUT),
        },
    }
    for name, value in values.items():
        if isinstance(value, str) and "{{$" in value:
            try:
                values[name] = _resolve_text(value, executor_input, _known(call))
            except InvalidArgument as e:
                raise TaskFailed(call.task_name, f"input {name!r}: {e}") from e
    return executor_input


def resolve_placeholders(
    items: Sequence[str],
    executor_input: Mapping[str, Any],
    *,
    known: Mapping[str, str] | None = None,
) -> list[str]:
    """Resolve KFP placeholders in a container's command or args against an ExecutorInput.

    `{"IfPresent": …}` and `{"Concat": …}` items expand to zero or more strings;
    `{{$}}`, `{{$.inputs.parameters['x']}}`, `{{$.outputs.artifacts['y'].path}}` and
    the like are substituted; `known` maps further placeholders (such as
    `dsl.PIPELINE_JOB_NAME_PLACEHOLDER`) to values. Anything else raises `InvalidArgument`.
    """
    ins = executor_input.get("inputs", {})
    provided = {k for k, v in ins.get("parameterValues", {}).items() if v is not None}
    provided |= set(ins.get("artifacts", {}))
    resolved: list[str] = []
    for item in items:
        if item.startswith(('{"Concat"', '{"IfPresent"')):
            parts = _expand_structure(json.loads(item), provided)
        else:
            parts = [item]
        resolved += [_resolve_text(part, executor_input, known or {}) for part in parts]
    return resolved


def _component_source(executor: Mapping[str, Any]) -> tuple[str, str] | None:
    """The embedded module source and function name of a lightweight Python component."""
    container = executor.get("container")
    if not isinstance(container, Mapping):
        return None
    command = list(container.get("command", []))
    args = list(container.get("args", []))
    if "--function_to_execute" not in args[:-1]:
        return None
    for i, part in enumerate(command[:-1]):
        if "kfp.dsl.executor_main" in part and "ephemeral_component.py" in part:
            return str(command[i + 1]), str(args[args.index("--function_to_execute") + 1])
    return None


def _container_env(executor: Mapping[str, Any]) -> dict[str, str]:
    env = executor.get("container", {}).get("env", [])
    return {str(e["name"]): str(e.get("value", "")) for e in env}


def _known(call: TaskCall) -> dict[str, str]:
    """Placeholders the executor can answer; pipeline-level ones the runner substitutes."""
    return {dsl.PIPELINE_TASK_NAME_PLACEHOLDER: call.task_name}


def _prepare_output_dir(executor_input: Mapping[str, Any]) -> str:
    """Create the output directory, clear what an earlier attempt wrote; return the log path."""
    outputs = executor_input["outputs"]
    for path in [outputs["outputFile"], *(p["outputFile"] for p in outputs["parameters"].values())]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    output_dir = os.path.dirname(outputs["outputFile"])
    os.makedirs(output_dir, exist_ok=True)
    return os.path.join(output_dir, TASK_LOG)


def _runtime_artifact(artifact: ArtifactValue, spec: Mapping[str, Any] | None = None) -> Any:
    """KFP's RuntimeArtifact; an output's type comes from its spec, verbatim."""
    schema = {"schemaTitle": artifact.schema_title, "schemaVersion": artifact.schema_version}
    return {
        "name": artifact.name,
        "uri": artifact.uri,
        "type": dict(spec["artifactType"]) if spec else schema,
        "metadata": copy.deepcopy(dict(artifact.metadata)),
    }


def _load_module(source: str, digest: str, filename: str) -> types.ModuleType:
    """The component's module, executed once per source in this process (a warm import)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = _MODULES.get(digest)
    if module is None:
        module = types.ModuleType(f"ephemeral_component_{digest[:16]}")
        module.__file__ = filename
        sys.modules[module.__name__] = module
        try:  # dont_inherit: this module's `from __future__ import annotations` must not leak
            exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
        except BaseException:
            del sys.modules[module.__name__]
            raise
        _MODULES[digest] = module
    return module


def _user_traceback(error: BaseException, filename: str, source: str) -> str:
    """The traceback from the component's first frame on; ratchet's own frames left out."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    if tb is None:  # raised by kfp's executor itself (a wrong return type, a missing input)
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


@contextlib.contextmanager
def _task_environment(overrides: Mapping[str, str]) -> Iterator[None]:
    """Apply `overrides` to the environment; undo them, and any change the task made, after."""
    before, cwd = dict(os.environ), os.getcwd()
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        if os.getcwd() != cwd:
            os.chdir(cwd)


@contextlib.contextmanager
def _captured_output(path: str) -> Iterator[None]:
    """Send file descriptors 1 and 2, and `sys.stdout`/`sys.stderr`, to `path` meanwhile."""
    _flush_streams()
    saved = {fd: _dup(fd) for fd in (1, 2)}
    streams = sys.stdout, sys.stderr
    with open(path, "w", buffering=1, encoding="utf-8", errors="backslashreplace") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        sys.stdout = sys.stderr = log
        try:
            yield
        finally:
            _flush_streams()
            sys.stdout, sys.stderr = streams
            for fd, copy_ in saved.items():
                if copy_ is None:
                    os.close(fd)
                else:
                    os.dup2(copy_, fd)
                    os.close(copy_)


def _dup(fd: int) -> int | None:
    try:
        return os.dup(fd)
    except OSError:  # the process was started without this descriptor
        return None


def _flush_streams() -> None:
    """Flush Python's streams and C stdio, so what a task printed lands in its log."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # closed by the task: nothing to flush
                stream.flush()
    with contextlib.suppress(OSError, TypeError, AttributeError):  # no C library (not POSIX)
        ctypes.CDLL(None).fflush(None)


def _read_outputs(call: TaskCall, executor_input: Mapping[str, Any], log: str) -> TaskOutputs:
    """Outputs as KFP reads them: executor_output.json, then each parameter's output file."""
    outputs = executor_input["outputs"]
    written: dict[str, Any] = {}
    if os.path.isfile(outputs["outputFile"]):
        with open(outputs["outputFile"], encoding="utf-8") as f:
            written = json.load(f)
    types_ = {
        name: spec.get("parameterType")
        for name, spec in call.component.get("outputDefinitions", {}).get("parameters", {}).items()
    }
    parameters = dict(written.get("parameterValues", {}))
    for name, spec in outputs["parameters"].items():
        if os.path.isfile(spec["outputFile"]):
            parameters[name] = _read_parameter_file(call, name, spec["outputFile"], types_[name])
    try:
        for name, value in parameters.items():
            kind = types_.get(name)
            if value is not None and kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
                parameters[name] = int(value) if kind == "NUMBER_INTEGER" else float(value)
    except (TypeError, ValueError) as e:
        raise TaskFailed(call.task_name, f"output {name!r} is not a {kind}: {e}") from e
    artifacts: dict[str, list[ArtifactValue]] = {}
    reported = written.get("artifacts", {})
    for name, declared in outputs["artifacts"].items():
        runtime = reported.get(name, {}).get("artifacts") or declared["artifacts"]
        schema = declared["artifacts"][0]["type"]
        artifacts[name] = [_artifact_value(r, schema) for r in runtime]
    return TaskOutputs(parameters=parameters, artifacts=artifacts, log_path=log)


def _read_parameter_file(call: TaskCall, name: str, path: str, parameter_type: str) -> Any:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if parameter_type == "STRING":
        return text
    try:
        return json.loads(text.lower() if parameter_type == "BOOLEAN" else text)
    except json.JSONDecodeError as e:
        raise TaskFailed(
            call.task_name, f"output {name!r} in {path} is not a valid {parameter_type}: {e}"
        ) from e


def _artifact_value(runtime: Mapping[str, Any], schema: Mapping[str, Any]) -> ArtifactValue:
    uri = str(runtime.get("uri", ""))
    custom = runtime.get("custom_path")
    if custom and os.path.exists(custom) and os.path.isabs(uri) and custom != uri:
        # KFP's launcher uploads a custom path to the artifact's URI; locally that is a copy
        if os.path.isdir(custom):
            shutil.copytree(custom, uri, dirs_exist_ok=True)
        else:
            shutil.copyfile(custom, uri)
    return ArtifactValue(
        name=str(runtime.get("name", "")),
        uri=uri,
        schema_title=str(schema.get("schemaTitle", "system.Artifact")),
        schema_version=str(schema.get("schemaVersion", "0.0.1")),
        metadata=dict(runtime.get("metadata") or {}),
    )


def _expand_structure(node: Any, provided: set[str]) -> list[str]:
    """Expand an IfPresent/Concat placeholder structure into plain strings."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [part for item in node for part in _expand_structure(item, provided)]
    if isinstance(node, dict) and "Concat" in node:
        return ["".join(_expand_structure(node["Concat"], provided))]
    if isinstance(node, dict) and "IfPresent" in node:
        spec = node["IfPresent"]
        branch = spec.get("Then") if spec.get("InputName") in provided else spec.get("Else")
        return [] if branch is None else _expand_structure(branch, provided)
    raise InvalidArgument(f"unsupported KFP placeholder structure {json.dumps(node)}")


def _resolve_text(text: str, executor_input: Mapping[str, Any], known: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) in known:
            return known[match.group(0)]
        return _lookup(match.group(1), executor_input, match.group(0))

    return _PLACEHOLDER.sub(replace, text)


def _lookup(path: str, executor_input: Mapping[str, Any], whole: str) -> str:
    steps = [a or b for a, b in _STEP.findall(path)]
    if _STEP.sub("", path):
        steps = ["?"]
    outs = executor_input["outputs"]
    match steps:
        case []:
            return json.dumps(executor_input)
        case ["outputs", "output_file"] | ["outputMetadataUri"]:
            return str(outs["outputFile"])
        case ["inputs", "parameters", name]:
            return _text(executor_input["inputs"].get("parameterValues", {}).get(name))
        case ["outputs", "parameters", name, "output_file"] if name in outs["parameters"]:
            return str(outs["parameters"][name]["outputFile"])
        case ["inputs" | "outputs" as side, "artifacts", name, *field]:
            found = executor_input[side].get("artifacts", {}).get(name, {}).get("artifacts", [])
            if not field:
                return json.dumps(found)
            if found and field in (["path"], ["uri"], ["name"]):
                return str(found[0]["name" if field == ["name"] else "uri"])
            if found and field[0] == "metadata" and len(field) <= 2:
                metadata = found[0].get("metadata", {})
                return _text(metadata.get(field[1]) if len(field) == 2 else metadata)
    raise InvalidArgument(f"unsupported or unresolvable KFP placeholder {whole}")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
