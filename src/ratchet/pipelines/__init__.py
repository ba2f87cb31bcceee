"""Run Kubeflow Pipelines (KFP v2) pipelines on this machine: parallel, cached, recorded.

    from kfp import dsl
    from ratchet import pipelines

    run = pipelines.run(my_pipeline, arguments={"n": 3})
    run.state, run.tasks, run.outputs

Pipelines are written with the KFP SDK and executed from their compiled IR, so
what runs here is what a Kubeflow or Vertex AI cluster would run;
`compile_pipeline` writes that IR with kfp's own compiler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ratchet.artifacts import ArtifactStore
from ratchet.config import Config, load_config
from ratchet.errors import InvalidArgument, NotFound
from ratchet.metadata import MetadataStore
from ratchet.pipelines.graph import TaskState
from ratchet.pipelines.recording import PIPELINE_RUN, SPEC, RunRecorder
from ratchet.pipelines.runner import (
    OnChange,
    PipelineRun,
    Runner,
    new_run_name,
    pipeline_arguments,
)
from ratchet.pipelines.spec import PipelineSpec, compile_pipeline, git_commit, load

__all__ = [
    "PipelineRun",
    "PipelineSpec",
    "TaskState",
    "compile_pipeline",
    "load",
    "resume",
    "run",
]


def run(
    pipeline: object,
    arguments: Mapping[str, Any] | None = None,
    *,
    enable_caching: bool = True,
    max_workers: int | None = None,
    config: Config | None = None,
    pipeline_name: str | None = None,
    on_change: OnChange | None = None,
) -> PipelineRun:
    """Run a `@dsl.pipeline` function, a `.py` file defining one, or a compiled YAML/JSON spec.

    Bad arguments are refused before anything runs or is recorded.
    """
    spec = load(pipeline, name=pipeline_name)
    values = pipeline_arguments(spec, arguments or {})
    return _execute(
        spec,
        values,
        config=config or load_config(),
        enable_caching=enable_caching,
        max_workers=max_workers,
        on_change=on_change,
    )


def resume(
    run_name: str,
    *,
    config: Config | None = None,
    max_workers: int | None = None,
    on_change: OnChange | None = None,
) -> PipelineRun:
    """Run an earlier run again: tasks that completed in it are reused, the rest run."""
    config = config or load_config()
    with MetadataStore.from_config(config, create=False) as store:
        context = store.find_context(PIPELINE_RUN, run_name)
        if context is None:
            raise NotFound(f"no pipeline run {run_name!r}")
        version = store.find_parents(context.id or 0)
        specs = [a for v in version for a in store.find_artifacts(type=SPEC, context=v.id)]
        if not specs or not specs[0].sha256:
            raise NotFound(f"pipeline run {run_name!r} has no stored spec to resume from")
        spec_sha = specs[0].sha256
        arguments = context.properties.get("arguments", {})
    with ArtifactStore.from_config(config).open(spec_sha) as f:
        spec = load(json.loads(f.read()))
    if not isinstance(arguments, dict):
        raise InvalidArgument(f"pipeline run {run_name!r} has unreadable arguments")
    return _execute(
        spec,
        arguments,
        config=config,
        # Only what completed in the resumed run is reused; everything else runs again.
        enable_caching=False,
        max_workers=max_workers,
        on_change=on_change,
        resumed_from=run_name,
    )


def _execute(
    spec: PipelineSpec,
    arguments: Mapping[str, Any],
    *,
    config: Config,
    enable_caching: bool,
    max_workers: int | None,
    on_change: OnChange | None,
    resumed_from: str | None = None,
) -> PipelineRun:
    with MetadataStore.from_config(config) as store:
        recorder = RunRecorder(
            store,
            ArtifactStore.from_config(config),
            spec,
            run_name=new_run_name(spec),
            arguments=arguments,
            git_commit=git_commit(Path.cwd()),
            resumed_from=resumed_from,
        )
        runner = Runner(
            spec,
            recorder,
            arguments=arguments,
            work_dir=config.home / "pipelines",
            enable_caching=enable_caching,
            max_workers=max_workers,
            on_change=on_change,
            resume_from=resumed_from,
            environment=config.to_env(),
        )
        return runner.run()
