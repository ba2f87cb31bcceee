"""Loading a pipeline as compiled KFP IR (PipelineSpec), its version, and compiling it.

Owns how a `@dsl.pipeline` function, a `.py` file holding one, or a compiled
YAML/JSON file becomes the IR dict ratchet executes, the content hash that
versions it, and the features ratchet refuses up front. Executing the IR is
`runner`'s job.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from ratchet.errors import InvalidArgument, NotFound

# Parts of the IR that do not change what runs: left out of the version hash.
_UNVERSIONED = ("sdkVersion",)


@dataclass(frozen=True)
class PipelineSpec:
    """A compiled pipeline: its IR as a dict, its name, and its version (content hash)."""

    ir: Mapping[str, Any]
    source: str

    @property
    def name(self) -> str:
        return str(self.ir.get("pipelineInfo", {}).get("name", "pipeline"))

    @property
    def version(self) -> str:
        versioned = {k: v for k, v in self.ir.items() if k not in _UNVERSIONED}
        canonical = json.dumps(versioned, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def root(self) -> Mapping[str, Any]:
        return self.ir["root"]  # type: ignore[no-any-return]

    def component(self, name: str) -> Mapping[str, Any]:
        try:
            return self.ir["components"][name]  # type: ignore[no-any-return]
        except KeyError as e:
            raise InvalidArgument(f"the pipeline spec has no component {name!r}") from e

    def executor(self, label: str) -> Mapping[str, Any]:
        try:
            return self.ir["deploymentSpec"]["executors"][label]  # type: ignore[no-any-return]
        except KeyError as e:
            raise InvalidArgument(f"the pipeline spec has no executor {label!r}") from e


def load(pipeline: object, *, name: str | None = None) -> PipelineSpec:
    """The IR of a `@dsl.pipeline` function, a `.py` file defining one, or a YAML/JSON spec."""
    if isinstance(pipeline, Mapping):
        return _checked(PipelineSpec(dict(pipeline), "<dict>"))
    if isinstance(pipeline, str | Path):
        path = Path(pipeline)
        if not path.is_file():
            raise NotFound(f"no pipeline file {path}")
        if path.suffix == ".py":
            return load(find_pipeline(path, name), name=name)
        return _checked(PipelineSpec(_read_spec_file(path), str(path)))
    spec = getattr(pipeline, "pipeline_spec", None)
    if spec is None:
        raise InvalidArgument(
            f"expected a @dsl.pipeline function or a pipeline file, not {type(pipeline).__name__}"
        )
    from google.protobuf import json_format

    ir = json_format.MessageToDict(spec)
    return _checked(PipelineSpec(ir, getattr(pipeline, "name", None) or "<function>"))


def _read_spec_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        # kfp writes the PipelineSpec first and, when there is one, a platform spec second.
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InvalidArgument(f"{path} is not a readable pipeline spec: {e}") from e
    if not documents or not isinstance(documents[0], dict) or "root" not in documents[0]:
        raise InvalidArgument(f"{path} is not a compiled KFP pipeline spec (no 'root')")
    return documents[0]


def find_pipelines(path: Path) -> dict[str, object]:
    """The `@dsl.pipeline` objects a Python file defines, by attribute name."""
    module_name = (
        f"ratchet_pipeline_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    )
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise InvalidArgument(f"importing {path} failed: {type(e).__name__}: {e}") from e
    return {
        attr: value
        for attr, value in vars(module).items()
        if getattr(value, "pipeline_spec", None) is not None
        and getattr(value, "pipeline_func", None) is not None
    }


def find_pipeline(path: Path, name: str | None = None) -> object:
    """The `@dsl.pipeline` object in a Python file, by function or pipeline name if several."""
    found = find_pipelines(path)
    if name is not None:
        for attr, value in found.items():
            if name in (attr, getattr(value, "name", None)):
                return value
        raise NotFound(f"no pipeline {name!r} in {path}; found: {', '.join(found) or 'none'}")
    if len(found) != 1:
        listed = ", ".join(found) or "none"
        raise InvalidArgument(f"{path} defines {len(found)} pipelines ({listed}); pick one")
    return next(iter(found.values()))


def compile_pipeline(pipeline: object, output: Path, *, name: str | None = None) -> PipelineSpec:
    """Compile with kfp's own compiler, so the file is what Kubeflow and Vertex accept."""
    from kfp import compiler

    target = find_pipeline(pipeline, name) if isinstance(pipeline, Path) else pipeline
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(target, str(output))
    return load(output)


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the git repository around `where` (default: cwd), or None outside one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def dag_tasks(spec: PipelineSpec) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Every (dag owner, task name, task spec) in the pipeline, sub-DAGs included."""
    yield from (("root", n, t) for n, t in spec.root.get("dag", {}).get("tasks", {}).items())
    for comp_name, component in spec.ir.get("components", {}).items():
        for task_name, task in component.get("dag", {}).get("tasks", {}).items():
            yield comp_name, task_name, task


def _checked(spec: PipelineSpec) -> PipelineSpec:
    """Refuse, before anything runs, the features ratchet does not execute."""
    executors = spec.ir.get("deploymentSpec", {}).get("executors", {})
    for _, task_name, task in dag_tasks(spec):
        component = spec.component(task["componentRef"]["name"])
        if "artifactIterator" in task:
            raise InvalidArgument(
                f"task {task_name!r}: ParallelFor over artifacts is not supported yet"
            )
        label = component.get("executorLabel")
        if label is None:
            continue
        executor = executors.get(label, {})
        if "resolver" in executor:
            raise InvalidArgument(f"task {task_name!r}: resolver executors are not supported")
        if not ({"container", "importer"} & set(executor)):
            kinds = ", ".join(executor) or "none"
            raise InvalidArgument(f"task {task_name!r}: unsupported executor kind ({kinds})")
        missing = missing_packages(executor)
        if missing:
            raise InvalidArgument(
                f"task {task_name!r}: packages_to_install asks for {', '.join(missing)}, not "
                "installed here (ratchet runs components in this environment; pip install them)"
            )
    return spec


_PIP_INSTALL = re.compile(r"pip install ([^&]*)")
_QUOTED = re.compile(r"'([^']*)'")


def missing_packages(executor: Mapping[str, Any]) -> list[str]:
    """Requirements of a component's `packages_to_install` that this environment lacks.

    kfp's own requirement is left out: the installed kfp runs every component here.
    """
    script = " ".join(str(part) for part in executor.get("container", {}).get("command", []))
    missing = []
    for install in _PIP_INSTALL.findall(script):
        for text in _QUOTED.findall(install):
            if text.startswith("-"):
                continue
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                missing.append(text)
                continue
            if requirement.name == "kfp" or (
                requirement.marker is not None and not requirement.marker.evaluate()
            ):
                continue
            try:
                installed = importlib.metadata.version(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(text)
                continue
            if not requirement.specifier.contains(installed, prereleases=True):
                missing.append(f"{text} (installed: {installed})")
    return missing
