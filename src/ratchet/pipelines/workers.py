"""A pool of warm worker processes that run KFP tasks, one task at a time each.

Owns the worker processes (started on demand up to `max_workers`, reused across tasks,
replaced when one dies) and the futures their results arrive in. What a task does lives
in `executor`; which tasks run and when, in `runner`.

A worker is a fresh interpreter of this environment (started with fork-and-exec, so safe
when the parent has threads, and never re-importing the parent's `__main__`). It imports
kfp in runtime mode (`_KFP_RUNTIME=true`, as a KFP container's executor does) and enters
`ratchet.pipelines` without running the package's `__init__`, so it starts in a fraction
of a second and holds only the executor. Each worker leads its own process group, which
`cancel_all` kills whole (POSIX only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
import weakref
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.pipelines.contract import TaskCall, TaskFailed, TaskOutputs
from ratchet.pipelines.executor import run_task

__all__ = ["WorkerPool"]

_KFP_LOG_FORMAT = "[KFP Executor %(asctime)s %(levelname)s]: %(message)s"
_BOOTSTRAP = """\
import json, os, sys, types
os.environ["_KFP_RUNTIME"] = "true"
sys.path[1:1] = [p for p in json.loads(sys.argv[3]) if p not in sys.path]
import ratchet
package = types.ModuleType("ratchet.pipelines")
package.__path__ = [os.path.join(os.path.dirname(ratchet.__file__), "pipelines")]
sys.modules["ratchet.pipelines"] = package
from ratchet.pipelines.workers import _serve
_serve(int(sys.argv[1]), int(sys.argv[2]))
"""


class WorkerPool:
    """Run `TaskCall`s in warm worker processes; `submit` returns a future of `TaskOutputs`.

    A task that fails comes back as `TaskFailed`; so does a task whose worker died
    (a crash, `os._exit`), and that worker is replaced. `cancel_all` (for Ctrl-C) kills
    the running workers: their futures, and those of queued tasks, are cancelled.

        with WorkerPool() as pool:
            outputs = pool.submit(call).result()
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise InvalidArgument(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running: dict[_Job, _Worker] = {}
        self._live: set[_Worker] = set()
        self._epoch = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._live)

    def submit(self, call: TaskCall) -> Future[TaskOutputs]:
        """Queue a task; a worker is started when none is idle and the pool is not full."""
        future: Future[TaskOutputs] = Future()
        with self._lock:
            if self._closed:
                raise FailedPrecondition("the worker pool is closed")
            self._jobs.put(_Job(call, future, self._epoch))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._serve_worker,
                    name=f"ratchet-worker-{len(self._threads)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return future

    def cancel_all(self) -> None:
        """Cancel queued tasks and kill the workers running tasks; the pool stays usable."""
        with self._lock:
            self._epoch += 1
            for worker in self._running.values():
                worker.kill()
            queued: list[_Job | None] = []
            with contextlib.suppress(queue.Empty):
                while True:
                    queued.append(self._jobs.get_nowait())
            for _ in range(queued.count(None)):  # close() is waiting for threads to stop
                self._jobs.put(None)
        for job in queued:
            if job is not None:
                job.future.cancel()

    def close(self) -> None:
        """Finish the queued tasks, then stop every worker. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            self.cancel_all()
        self.close()

    def _serve_worker(self) -> None:
        """One thread per worker process: hand it queued tasks, one at a time."""
        worker: _Worker | None = None
        try:
            while (job := self._jobs.get()) is not None:
                try:
                    worker = self._handle(job, worker)
                except Exception as e:  # a fault here must not leave the future pending forever
                    if not job.future.done():
                        job.future.set_exception(e)
                finally:
                    self._idle.release()
        finally:
            if worker is not None:
                worker.stop()
                self._live.discard(worker)

    def _handle(self, job: _Job, worker: _Worker | None) -> _Worker | None:
        """Run one job, starting a worker if needed; return the worker, None if it died."""
        if job.epoch != self._epoch:
            job.future.cancel()
            return worker
        if not job.future.set_running_or_notify_cancel():
            return worker
        if worker is not None and worker.killed:  # by cancel_all, as its last task ended
            worker.stop()
            self._live.discard(worker)
            worker = None
        if worker is None:
            try:
                worker = _Worker()
            except OSError as e:
                self._settle(job, TaskFailed(job.call.task_name, f"no worker process: {e}"))
                return None
            self._live.add(worker)
        with self._lock:
            cancelled = job.epoch != self._epoch
            if not cancelled:
                self._running[job] = worker
        if cancelled:
            self._settle(job, CancelledError(f"task {job.call.task_name!r} was cancelled"))
        elif not self._run(worker, job):
            self._live.discard(worker)
            return None
        return worker

    def _run(self, worker: _Worker, job: _Job) -> bool:
        """Run a job on a worker and settle its future; False when the worker died."""
        try:
            message = pickle.dumps(job.call, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            self._settle(job, TaskFailed(job.call.task_name, f"its inputs cannot be sent: {e}"))
            return True
        try:
            kind, payload = worker.exchange(message)
        except _WorkerDied as e:
            with self._lock:
                cancelled = job.epoch != self._epoch
            if cancelled:
                self._settle(job, CancelledError(f"task {job.call.task_name!r} was cancelled"))
            else:
                self._settle(job, TaskFailed(job.call.task_name, str(e)))
            return False
        self._settle(job, payload if kind == "ok" else TaskFailed(job.call.task_name, payload))
        return True

    def _settle(self, job: _Job, outcome: TaskOutputs | BaseException) -> None:
        with self._lock:
            self._running.pop(job, None)
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)


@dataclass(eq=False)
class _Job:
    call: TaskCall
    future: Future[TaskOutputs]
    epoch: int


class _WorkerDied(Exception):
    """The worker process went away while running a task."""


class _Worker:
    """One worker process and the two pipes the pool talks to it through."""

    def __init__(self) -> None:
        from_child, child_out = os.pipe()
        child_in, to_child = os.pipe()
        try:
            path = json.dumps(sys.path)
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child_in), str(child_out), path],
                pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL,  # as in a KFP container: a task reads no terminal
                start_new_session=True,
            )
        except BaseException:
            os.close(from_child)
            os.close(to_child)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        self.pid = self.process.pid
        self.killed = False
        self._send = os.fdopen(to_child, "wb")
        self._receive = os.fdopen(from_child, "rb")

    def exchange(self, message: bytes) -> tuple[str, Any]:
        """Send a pickled call, wait for the reply: ("ok", TaskOutputs) or ("failed", detail)."""
        try:
            self._send.write(message)
            self._send.flush()
            reply: tuple[str, Any] = pickle.load(self._receive)
        except (OSError, EOFError, pickle.UnpicklingError) as e:
            self._close_pipes()
            raise _WorkerDied(f"the worker process running it died ({self._death()})") from e
        return reply

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Close the pipes: an idle worker exits on its own; one that does not is killed."""
        self._close_pipes()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()

    def _close_pipes(self) -> None:
        for pipe in (self._send, self._receive):
            with contextlib.suppress(OSError):  # unsent bytes to a dead worker: nothing to do
                pipe.close()

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it closed our pipe but lives on: finish it
            self.kill()
            code = self.process.wait()
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


def _kill_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()


class _TaskLogHandler(logging.Handler):
    """Log records to whatever `sys.stdout` is now: the running task's log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _serve(read_fd: int, write_fd: int) -> None:
    """A worker process's loop: read a call, run it, reply; until the pool closes the pipe."""
    for fd in (read_fd, write_fd):
        os.set_inheritable(fd, False)  # a task's subprocesses must not hold the pipes open
    # As kfp.dsl.executor_main does: a component's logging.info lands in its log.
    handler = _TaskLogHandler()
    handler.setFormatter(logging.Formatter(_KFP_LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    with os.fdopen(read_fd, "rb") as receive, os.fdopen(write_fd, "wb") as send:
        while True:
            try:
                call: TaskCall = pickle.load(receive)
            except EOFError:
                return
            reply: tuple[str, Any]
            try:
                reply = ("ok", run_task(call))
            except TaskFailed as e:
                reply = ("failed", e.detail)
            except Exception:
                reply = ("failed", f"ratchet could not run the task:\n{traceback.format_exc()}")
            send.write(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
            send.flush()
