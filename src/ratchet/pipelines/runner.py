"""`Runner`: executes a compiled KFP pipeline on this machine, concurrently, cached, recorded.

Owns the scheduling of one run: which task is ready, skipping after a failure or
a false condition, loop iterations under their parallelism limit, nested DAGs,
exit handlers, retries, caching and cancellation. Each finished task is handed
to `RunRecorder`. Executing one task is `executor`'s (through `workers`);
reading inputs and outputs off the IR is `graph`'s.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidArgument
from ratchet.pipelines import conditions, executor
from ratchet.pipelines.contract import ArtifactValue, TaskCall, TaskFailed, TaskOutputs
from ratchet.pipelines.graph import (
    Node,
    Scope,
    TaskState,
    coerce_parameter,
    dag_outputs,
    loop_items,
    resolve_inputs,
)
from ratchet.pipelines.recording import RunRecorder, cache_key
from ratchet.pipelines.spec import PipelineSpec
from ratchet.pipelines.workers import WorkerPool

logger = logging.getLogger(__name__)

#: Called as (task path, new state) whenever a task changes state, e.g. for a live view.
OnChange = Callable[[str, TaskState], None]
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class PipelineRun:
    """The outcome of a run: its state, each task's state and error, the pipeline outputs."""

    name: str
    pipeline: str
    version: str
    state: str
    tasks: Mapping[str, TaskState]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class _Attempt:
    """What a running leaf task was started with, kept until it is recorded."""

    call: TaskCall
    key: str | None
    cacheable: bool
    started: float
    uses_pipeline_parameters: bool


def pipeline_arguments(spec: PipelineSpec, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The run's parameter values: arguments checked and typed, defaults filled in."""
    declared = spec.root.get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(arguments) - set(declared))
    if unknown:
        raise InvalidArgument(
            f"pipeline {spec.name!r} has no parameter {unknown[0]!r}; "
            f"its parameters: {', '.join(declared) or 'none'}"
        )
    values: dict[str, Any] = {}
    for name, definition in declared.items():
        if name in arguments:
            values[name] = coerce_parameter(name, arguments[name], definition["parameterType"])
        elif "defaultValue" in definition:
            values[name] = coerce_parameter(
                name, definition["defaultValue"], definition["parameterType"]
            )
        elif not definition.get("isOptional"):
            raise InvalidArgument(f"pipeline {spec.name!r} needs a value for {name!r}")
    if spec.root.get("inputDefinitions", {}).get("artifacts"):
        raise InvalidArgument("pipeline-level input artifacts are not supported yet")
    return values


class Runner:
    """One run of one pipeline spec; `run()` blocks until every task has finished."""

    def __init__(
        self,
        spec: PipelineSpec,
        recorder: RunRecorder,
        *,
        arguments: Mapping[str, Any],
        work_dir: Path,
        enable_caching: bool = True,
        max_workers: int | None = None,
        on_change: OnChange | None = None,
        resume_from: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        # Every task sees the run's stores (a component's own env entries win).
        self.environment = dict(environment or {})
        self.resume_from = resume_from
        self.recorder = recorder
        self.arguments = dict(arguments)
        self.work_dir = work_dir
        self.enable_caching = enable_caching
        self.max_workers = max_workers
        self.on_change = on_change
        self._done: queue.Queue[tuple[Node, Future[TaskOutputs]]] = queue.Queue()
        self._attempts: dict[Node, _Attempt] = {}
        self._pool: WorkerPool | None = None
        self._threads: ThreadPoolExecutor | None = None

    @property
    def run_name(self) -> str:
        return self.recorder.run_name

    def run(self) -> PipelineRun:
        root = Scope("", self.spec.root, dict(self.arguments), {})
        state, error = "SUCCEEDED", None
        try:
            while not root.done:
                while self._advance(root):
                    pass  # a cached or skipped task can make others ready at once
                if root.done:
                    break
                if not self._attempts:
                    raise InvalidArgument("pipeline cannot progress: tasks wait on each other")
                node, future = self._next_finished()
                self._finish_leaf(node, future)
                while not self._done.empty():
                    self._finish_leaf(*self._done.get_nowait())
            if root.failed:
                state, error = "FAILED", self._first_error(root)
        except KeyboardInterrupt:
            state, error = "CANCELLED", "cancelled by the user"
            with _interrupts_deferred():
                self._cancel(root)
        except BaseException as e:
            # A bad spec or input found mid-run: the run is recorded as failed, not left running.
            with _interrupts_deferred():
                self._cancel(root)
                self.recorder.finish("FAILED", f"{type(e).__name__}: {e}")
            raise
        finally:
            with _interrupts_deferred():
                if self._pool is not None:
                    self._pool.close()
                if self._threads is not None:
                    self._threads.shutdown(wait=False, cancel_futures=True)
        with _interrupts_deferred():
            self.recorder.finish(state, error)
        outputs, output_artifacts = dag_outputs(root)
        for name, artifacts in output_artifacts.items():
            # One artifact reads as itself, as kfp.local returns it; a collected list as a list.
            outputs[name] = artifacts[0] if len(artifacts) == 1 else artifacts
        nodes = list(_walk(root))
        return PipelineRun(
            name=self.run_name,
            pipeline=self.spec.name,
            version=self.spec.version,
            state=state,
            tasks={n.path: n.state for n in nodes},
            outputs=outputs,
            errors={n.path: n.error for n in nodes if n.error},
        )

    # ---- scheduling ---------------------------------------------------------------------

    def _advance(self, scope: Scope) -> bool:
        """Start every ready task of `scope` and its sub-scopes; close finished DAG tasks.

        Returns whether any task changed state.
        """
        progressed = False
        for node in scope.nodes.values():
            if node.state == TaskState.PENDING:
                dependencies = [scope.nodes[d] for d in node.dependencies]
                if all(d.state.done for d in dependencies):
                    self._start(node, dependencies)
                    progressed = True
            if node.state == TaskState.RUNNING and (node.children or node.waiting):
                self._admit_iterations(node)
                for child in node.children:
                    progressed = self._advance(child) or progressed
                if not node.waiting and all(child.done for child in node.children):
                    self._close_dag(node)
                    progressed = True
        return progressed

    def _set(self, node: Node, state: TaskState) -> None:
        node.state = state
        if self.on_change is not None:
            self.on_change(node.path, state)

    def _start(self, node: Node, dependencies: list[Node]) -> None:
        node.component = self.spec.component(node.spec["componentRef"]["name"])
        failed = [d for d in dependencies if d.failed_for_dependents]
        if failed and not node.runs_after_failure:
            node.upstream_failed = True
            self._skip(node, f"upstream task {failed[0].name!r} did not succeed")
            return
        parameters, artifacts = resolve_inputs(node, self.run_name)
        condition = node.spec.get("triggerPolicy", {}).get("condition")
        if condition and not conditions.evaluate(condition, parameters):
            self._skip(node, None)
            return
        if "dag" in node.component:
            self._start_dag(node, parameters, artifacts)
            return
        executor_spec = self.spec.executor(node.component["executorLabel"])
        if "importer" in executor_spec:
            self._import(node, executor_spec["importer"], parameters)
            return
        call = TaskCall(
            task_name=node.path,
            component=node.component,
            executor=executor_spec,
            parameters=parameters,
            artifacts=artifacts,
            output_dir=str(self.work_dir / self.run_name / node.path),
            env={
                **self.environment,
                **{
                    e["name"]: e.get("value", "")
                    for e in executor_spec.get("container", {}).get("env", [])
                },
            },
        )
        key = cache_key(
            node.component, executor_spec, parameters, artifacts, self.recorder.artifact_hashes
        )
        cacheable = self.enable_caching and bool(
            node.spec.get("cachingOptions", {}).get("enableCache")
        )
        uses_parameters = any(
            "componentInputParameter" in b
            for b in node.spec.get("inputs", {}).get("parameters", {}).values()
        )
        self._attempts[node] = _Attempt(call, key, cacheable, time.time(), uses_parameters)
        hit = self.recorder.lookup(key) if cacheable else None
        if hit is None and self.resume_from is not None:
            # What completed in the run being resumed is reused even with caching off.
            hit = self.recorder.lookup(key, run=self.resume_from)
        if hit is not None:
            node.parameters, node.artifacts = hit
            self._record(node, TaskState.CACHED)
            return
        self._set(node, TaskState.RUNNING)
        self._submit(node, call)

    def _submit(self, node: Node, call: TaskCall) -> None:
        if executor.is_python_component(call.executor):
            if self._pool is None:
                self._pool = WorkerPool(self.max_workers)
            future = self._pool.submit(call)
        else:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(self.max_workers, "ratchet-container")
            future = self._threads.submit(executor.run_container_component, call)
        future.add_done_callback(functools.partial(self._on_done, node))

    def _on_done(self, node: Node, future: Future[TaskOutputs]) -> None:
        # Called on a pool thread: only hand over to the scheduling loop.
        self._done.put((node, future))

    def _finish_leaf(self, node: Node, future: Future[TaskOutputs]) -> None:
        attempt = self._attempts[node]
        try:
            outputs = future.result()
        except TaskFailed as e:
            retries = int(node.spec.get("retryPolicy", {}).get("maxRetryCount", 0))
            if node.attempts < retries:
                node.attempts += 1
                delay = _backoff(node.spec.get("retryPolicy", {}), node.attempts)
                logger.info(
                    "retrying %s (%d/%d) in %.1fs", node.path, node.attempts, retries, delay
                )
                threading.Timer(delay, self._submit, (node, attempt.call)).start()
                return
            node.error = e.detail
            self._record(node, TaskState.FAILED)
            return
        except Exception as e:  # the pool itself broke: fail the task, keep the run going
            node.error = f"{type(e).__name__}: {e}"
            self._record(node, TaskState.FAILED)
            return
        node.parameters = dict(outputs.parameters)
        node.artifacts = {k: list(v) for k, v in outputs.artifacts.items()}
        self.recorder.hash_outputs(node.artifacts)
        self._record(node, TaskState.COMPLETE, log_uri=outputs.log_path)

    def _start_dag(
        self, node: Node, parameters: dict[str, Any], artifacts: dict[str, list[ArtifactValue]]
    ) -> None:
        if "parameterIterator" in node.spec:
            item_input, items = loop_items(node, parameters)
            node.waiting = [
                Scope(
                    f"{node.path}/{i}",
                    node.component,
                    {**parameters, item_input: item},
                    dict(artifacts),
                    owner=node,
                )
                for i, item in enumerate(items)
            ]
        else:
            node.children = [Scope(node.path, node.component, parameters, artifacts, owner=node)]
        self._set(node, TaskState.RUNNING)
        if not node.children and not node.waiting:
            self._close_dag(node)

    def _admit_iterations(self, node: Node) -> None:
        limit = int(node.spec.get("iteratorPolicy", {}).get("parallelismLimit", 0))
        while node.waiting:
            active = sum(1 for child in node.children if not child.done)
            if limit and active >= limit:
                break
            node.children.append(node.waiting.pop(0))

    def _close_dag(self, node: Node) -> None:
        failed = [c for c in node.children if c.failed]
        if failed:
            node.error = self._first_error(failed[0])
            self._set(node, TaskState.FAILED)
            return
        if "parameterIterator" in node.spec:
            template = Scope(node.path, node.component, {}, {})
            node.parameters, node.artifacts = dag_outputs(template, collect=node.children)
        else:
            node.parameters, node.artifacts = dag_outputs(node.children[0])
        self._set(node, TaskState.COMPLETE)

    def _import(self, node: Node, spec: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
        uri_source = spec.get("artifactUri", {})
        uri = uri_source.get("constant") or parameters.get(uri_source.get("runtimeParameter", ""))
        if not uri:
            node.error = "importer has no artifact URI"
            self._record(node, TaskState.FAILED)
            return
        local = str(uri)[len("file://") :] if str(uri).startswith("file://") else str(uri)
        schema = spec.get("typeSchema", {}).get("schemaTitle", "system.Artifact")
        node.artifacts = {
            "artifact": [
                ArtifactValue("artifact", local, schema, metadata=spec.get("metadata", {}))
            ]
        }
        self.recorder.hash_outputs(node.artifacts)
        self._attempts[node] = _Attempt(
            TaskCall(node.path, node.component, {"importer": spec}, parameters, {}, ""),
            None,
            False,
            time.time(),
            False,
        )
        self._record(node, TaskState.COMPLETE)

    def _skip(self, node: Node, reason: str | None) -> None:
        node.error = None
        self._set(node, TaskState.SKIPPED)
        self.recorder.task(
            node.path,
            node.spec["componentRef"]["name"],
            TaskState.SKIPPED,
            started=None,
            parameters={},
            inputs={},
            outputs={},
            output_parameters={},
            error=reason,
        )

    def _record(self, node: Node, state: TaskState, *, log_uri: str | None = None) -> None:
        attempt = self._attempts.pop(node)
        self._set(node, state)
        self.recorder.task(
            node.path,
            node.spec["componentRef"]["name"],
            state,
            started=attempt.started,
            parameters=attempt.call.parameters,
            inputs=attempt.call.artifacts,
            outputs=node.artifacts,
            output_parameters=node.parameters,
            key=attempt.key,
            cacheable=attempt.cacheable,
            log_uri=log_uri,
            error=node.error,
            uses_pipeline_parameters=attempt.uses_pipeline_parameters,
        )

    def _cancel(self, root: Scope) -> None:
        if self._pool is not None:
            self._pool.cancel_all()
        for node in _walk(root):
            if node.state == TaskState.RUNNING and node in self._attempts:
                node.error = "cancelled"
                self._record(node, TaskState.CANCELLED)
            elif not node.state.done:
                self._set(node, TaskState.CANCELLED)

    def _next_finished(self) -> tuple[Node, Future[TaskOutputs]]:
        # Woken every half second, not blocked until a task ends: Ctrl-C that the kernel
        # delivers to one of the worker threads is only acted on once the main thread runs
        # again, and a blocked wait would sleep through it until the running task finished.
        while True:
            try:
                return self._done.get(timeout=_WAKE_SECONDS)
            except queue.Empty:
                continue

    @staticmethod
    def _first_error(scope: Scope) -> str:
        for node in _walk(scope):
            if node.state == TaskState.FAILED and node.error and not node.children:
                return f"{node.path}: {node.error}"
        return "a task failed"


_WAKE_SECONDS = 0.5


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """A second Ctrl-C while a cancelled run is being recorded must not leave it half-written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _walk(scope: Scope) -> list[Node]:
    """Every node of a scope and its sub-scopes, parents before children."""
    found: list[Node] = []
    for node in scope.nodes.values():
        found.append(node)
        for child in node.children:
            found.extend(_walk(child))
    return found


def _backoff(policy: Mapping[str, Any], attempt: int) -> float:
    def seconds(text: object, default: float) -> float:
        try:
            return float(str(text).rstrip("s")) if text else default
        except ValueError:
            return default

    base = seconds(policy.get("backoffDuration"), 0.0)
    factor = float(policy.get("backoffFactor", 2.0) or 2.0)
    ceiling = seconds(policy.get("backoffMaxDuration"), MAX_BACKOFF_SECONDS)
    return min(base * factor ** (attempt - 1), ceiling, MAX_BACKOFF_SECONDS)


def new_run_name(spec: PipelineSpec) -> str:
    return f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
