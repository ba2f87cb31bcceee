"""The worker pool: warm reuse, concurrency, failures, crashes and cancellation."""

# Components are written as KFP's documentation writes them, in a module without
# `from __future__ import annotations`: kfp reads the annotations.

import os
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from google.protobuf import json_format
from kfp import dsl

from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.pipelines.contract import TaskCall, TaskFailed
from ratchet.pipelines.workers import WorkerPool

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE)
def whoami() -> int:
    import os

    return os.getpid()


@dsl.component(base_image=IMAGE)
def nap(seconds: float) -> NamedTuple("Span", [("start", float), ("end", float), ("pid", int)]):
    import os
    import time

    start = time.time()
    time.sleep(seconds)
    return (start, time.time(), os.getpid())


@dsl.component(base_image=IMAGE)
def fail_on_positive(x: int) -> int:
    if x > 0:
        raise ValueError(f"x must not be positive, got {x}")
    return x


@dsl.component(base_image=IMAGE)
def die(how: str):
    import ctypes
    import os

    if how == "exit":
        os._exit(3)
    ctypes.string_at(0)  # a segmentation fault


@dsl.component(base_image=IMAGE)
def hang(started: str):
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "300"])
    with open(started, "w") as f:
        f.write(str(child.pid))
    time.sleep(300)


@dsl.component(base_image=IMAGE)
def read_env(names: list) -> dict:
    import os

    seen = {name: os.environ.get(name) for name in names}
    os.environ["SET_BY_TASK"] = "must not leak into the next task"
    return seen


@dsl.component(base_image=IMAGE)
def chatty():
    import logging
    import os

    print("printed")
    logging.info("logged at INFO")
    os.system("echo from a shell")


@dsl.pipeline(name="workers")
def workers_pipeline():
    whoami()
    nap(seconds=0.0)
    fail_on_positive(x=1)
    die(how="exit")
    hang(started="")
    read_env(names=[])
    chatty()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json_format.MessageToDict(workers_pipeline.pipeline_spec)


@pytest.fixture
def pool() -> Any:
    with WorkerPool(max_workers=2) as opened:
        yield opened


def make_call(
    spec: dict[str, Any],
    name: str,
    output_dir: Path,
    parameters: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> TaskCall:
    component = spec["components"][f"comp-{name}"]
    return TaskCall(
        task_name=name,
        component=component,
        executor=spec["deploymentSpec"]["executors"][component["executorLabel"]],
        parameters=parameters or {},
        artifacts={},
        output_dir=str(output_dir),
        env=env or {},
    )


def test_sequential_tasks_reuse_one_warm_worker(
    spec: dict[str, Any], tmp_path: Path, pool: WorkerPool
) -> None:
    pids = [pool.submit(make_call(spec, "whoami", tmp_path / str(i))).result() for i in range(5)]

    assert len({p.parameters["Output"] for p in pids}) == 1
    assert pids[0].parameters["Output"] != os.getpid()


def test_independent_tasks_overlap(spec: dict[str, Any], tmp_path: Path, pool: WorkerPool) -> None:
    pool.submit(make_call(spec, "whoami", tmp_path / "warm")).result()
    futures = [
        pool.submit(make_call(spec, "nap", tmp_path / str(i), {"seconds": 0.5})) for i in range(2)
    ]
    first, second = (f.result(timeout=60).parameters for f in futures)

    assert first["pid"] != second["pid"]
    assert first["start"] < second["end"] and second["start"] < first["end"]


def test_task_failure_comes_back_as_task_failed(
    spec: dict[str, Any], tmp_path: Path, pool: WorkerPool
) -> None:
    future = pool.submit(make_call(spec, "fail-on-positive", tmp_path, {"x": 2}))

    error = future.exception(timeout=60)
    assert isinstance(error, TaskFailed)
    assert error.task_name == "fail-on-positive"
    assert "ValueError: x must not be positive, got 2" in error.detail
    assert 'raise ValueError(f"x must not be positive, got {x}")' in error.detail
    assert pool.submit(make_call(spec, "whoami", tmp_path / "next")).result(timeout=60)


@pytest.mark.parametrize(("how", "death"), [("exit", "exit code 3"), ("segv", "SIGSEGV")])
def test_dead_worker_is_a_task_failure_and_is_replaced(
    spec: dict[str, Any], tmp_path: Path, how: str, death: str
) -> None:
    with WorkerPool(max_workers=1) as pool:
        before = pool.submit(make_call(spec, "whoami", tmp_path / "before")).result(timeout=60)

        error = pool.submit(make_call(spec, "die", tmp_path / "die", {"how": how})).exception(60)

        assert isinstance(error, TaskFailed)
        assert error.task_name == "die"
        assert "worker process running it died" in error.detail and death in error.detail
        after = pool.submit(make_call(spec, "whoami", tmp_path / "after")).result(timeout=60)
        assert after.parameters["Output"] != before.parameters["Output"]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")  # a zombie no one reaped yet
    except FileNotFoundError:
        return True


def test_cancel_all_kills_running_tasks_and_what_they_started(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    started = tmp_path / "started"
    with WorkerPool(max_workers=1) as pool:
        running = pool.submit(make_call(spec, "hang", tmp_path / "h", {"started": str(started)}))
        queued = pool.submit(make_call(spec, "whoami", tmp_path / "queued"))
        deadline = time.monotonic() + 60
        while not started.exists() or not started.read_text():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.01)
        grandchild = int(started.read_text())

        pool.cancel_all()

        with pytest.raises(CancelledError):
            running.result(timeout=60)
        assert queued.cancelled()
        deadline = time.monotonic() + 10
        while not _gone(grandchild):
            assert time.monotonic() < deadline, "the task's subprocess survived cancellation"
            time.sleep(0.01)
        assert pool.submit(make_call(spec, "whoami", tmp_path / "after")).result(timeout=60)


def test_environment_per_task_without_leaks(spec: dict[str, Any], tmp_path: Path) -> None:
    names = ["FROM_CALL", "SET_BY_TASK", "_KFP_RUNTIME"]
    with WorkerPool(max_workers=1) as pool:
        first = pool.submit(
            make_call(spec, "read-env", tmp_path / "1", {"names": names}, env={"FROM_CALL": "x"})
        ).result(timeout=60)
        second = pool.submit(make_call(spec, "read-env", tmp_path / "2", {"names": names})).result(
            timeout=60
        )

    assert first.parameters["Output"] == {
        "FROM_CALL": "x",
        "SET_BY_TASK": None,
        "_KFP_RUNTIME": "true",
    }
    assert second.parameters["Output"] == {
        "FROM_CALL": None,
        "SET_BY_TASK": None,
        "_KFP_RUNTIME": "true",
    }


def test_task_output_and_logging_go_to_the_task_log(
    spec: dict[str, Any], tmp_path: Path, pool: WorkerPool
) -> None:
    outputs = pool.submit(make_call(spec, "chatty", tmp_path)).result(timeout=60)

    assert outputs.log_path == str(tmp_path / "task.log")
    lines = Path(outputs.log_path).read_text().splitlines()
    assert lines[0] == "printed"
    assert lines[1].startswith("[KFP Executor ") and lines[1].endswith(" INFO]: logged at INFO")
    assert lines[2] == "from a shell"


def test_cancelled_future_is_never_run(spec: dict[str, Any], tmp_path: Path) -> None:
    started = tmp_path / "started"
    with WorkerPool(max_workers=1) as pool:
        blocker = pool.submit(make_call(spec, "nap", tmp_path / "nap", {"seconds": 0.5}))
        skipped = pool.submit(make_call(spec, "hang", tmp_path / "h", {"started": str(started)}))
        assert skipped.cancel()
        blocker.result(timeout=60)
        pool.submit(make_call(spec, "whoami", tmp_path / "after")).result(timeout=60)

    assert not started.exists()


def test_closed_pool_refuses_work(spec: dict[str, Any], tmp_path: Path) -> None:
    pool = WorkerPool(max_workers=1)
    pool.close()
    pool.close()

    with pytest.raises(FailedPrecondition, match="closed"):
        pool.submit(make_call(spec, "whoami", tmp_path))


def test_max_workers_defaults_to_cpu_count_and_is_validated() -> None:
    assert WorkerPool().max_workers == os.cpu_count()
    with pytest.raises(InvalidArgument):
        WorkerPool(max_workers=0)
