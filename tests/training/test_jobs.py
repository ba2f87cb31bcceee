from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ratchet.data.engines.local import PreparedDataset
from ratchet.errors import InvalidArgument
from ratchet.metadata import MetadataStore
from ratchet.training.bundle import load_bundle
from ratchet.training.contract import ObjectiveFailed, TrainingContext, report
from ratchet.training.jobs import run_job

TABULAR = "module:ratchet.training.tabular"


def context(tmp_path: Path, dataset: PreparedDataset, name: str = "model") -> TrainingContext:
    return TrainingContext(model_dir=tmp_path / name, dataset=str(dataset.folder), trial_id="t1")


def test_a_callable_job_reports_and_is_recorded(
    tmp_path: Path, dataset: PreparedDataset, store: MetadataStore
) -> None:
    def train(rate: float) -> None:
        for step in range(1, 4):
            report(step, loss=rate / step)

    seen: list[int] = []
    result = run_job(
        train,
        {"rate": 0.6},
        context=context(tmp_path, dataset),
        launcher="inprocess",
        store=store,
        on_report=lambda step, metrics: seen.append(step),
    )
    assert result.state == "COMPLETE"
    assert seen == [1, 2, 3]
    assert result.metrics == {"loss": pytest.approx(0.2)}
    [job] = store.find_executions(type="TrainingJob")
    assert job.properties["state"] == "COMPLETE" and job.properties["trial_id"] == "t1"


def test_on_report_can_stop_a_job(tmp_path: Path, dataset: PreparedDataset) -> None:
    def train() -> None:
        for step in range(1, 100):
            report(step, loss=1.0)

    result = run_job(
        train,
        {},
        context=context(tmp_path, dataset),
        launcher="inprocess",
        on_report=lambda step, metrics: step >= 5,
    )
    assert result.state == "STOPPED"
    assert [r["step"] for r in result.reports] == [1, 2, 3, 4, 5]


def test_a_crashing_callable_fails_with_its_traceback_in_the_logs(
    tmp_path: Path, dataset: PreparedDataset, store: MetadataStore
) -> None:
    def train() -> None:
        raise ZeroDivisionError("the user's bug")

    result = run_job(
        train, {}, context=context(tmp_path, dataset), launcher="inprocess", store=store
    )
    assert result.state == "FAILED"
    assert "ZeroDivisionError: the user's bug" in result.logs.read_text()
    [job] = store.find_executions(type="TrainingJob")
    assert job.state.value == "FAILED" and "ZeroDivisionError" in str(job.properties["reason"])


def test_a_failed_objective_in_process(tmp_path: Path, dataset: PreparedDataset) -> None:
    def train() -> None:
        raise ObjectiveFailed("loss is nan at step 3", step=3)

    result = run_job(train, {}, context=context(tmp_path, dataset), launcher="inprocess")
    assert (result.state, result.reason) == ("FAILED_OBJECTIVE", "loss is nan at step 3")


def test_the_tabular_script_runs_as_a_subprocess_job_and_writes_a_bundle(
    tmp_path: Path, dataset: PreparedDataset, store: MetadataStore
) -> None:
    result = run_job(
        TABULAR,
        {"hidden": [16], "epochs": 3, "batch_size": 64, "learning_rate": 0.003, "report_every": 10},
        context=context(tmp_path, dataset),
        store=store,
    )
    assert result.state == "COMPLETE", result.logs.read_text()
    assert result.exit_code == 0
    assert any("loss" in r["metrics"] for r in result.reports)
    assert result.metrics["test_accuracy"] > 0.7
    bundle = load_bundle(result.model_dir)
    rows = dataset.folder / "raw_test"
    import pyarrow.parquet as pq

    raw = pq.read_table(rows)
    probabilities = bundle.predict_table(raw)
    assert probabilities.shape == (raw.num_rows, 2)
    record = {k: v for k, v in raw.slice(0, 1).to_pylist()[0].items() if k != "churned"}
    assert bundle.predict_records([record])[0] == pytest.approx(probabilities[0], abs=1e-6)
    [job] = store.find_executions(type="TrainingJob")
    [model] = store.find_artifacts(type="Model")
    assert model.uri == str(result.model_dir)
    assert job.properties["launcher"] == "process"


def test_bad_hyperparameters_fail_before_training(tmp_path: Path, dataset: PreparedDataset) -> None:
    for bad, message in [
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"depth": 3}, "unknown hyperparameter 'depth'"),
        ({"hidden": [0]}, "hidden"),
    ]:
        result = run_job(TABULAR, bad, context=context(tmp_path, dataset, f"m{len(message)}"))
        assert result.state == "FAILED"
        assert result.exit_code == 2
        assert message in result.logs.read_text()
        assert not (result.model_dir / "checkpoints").exists()


def test_a_subprocess_objective_failure_is_recorded_as_such(
    tmp_path: Path, dataset: PreparedDataset
) -> None:
    result = run_job(
        TABULAR,
        {"hidden": [16], "epochs": 3, "objective": 0.01, "within_steps": 20},
        context=context(tmp_path, dataset),
    )
    assert result.state == "FAILED_OBJECTIVE", result.logs.read_text()
    assert "objective 0.01 not reached within 20 steps" in (result.reason or "")
    assert result.exit_code == 3


def test_launcher_and_target_must_agree(tmp_path: Path, dataset: PreparedDataset) -> None:
    with pytest.raises(InvalidArgument, match="a callable runs in process"):
        run_job(lambda: None, {}, context=context(tmp_path, dataset), launcher="process")
    with pytest.raises(InvalidArgument, match="launcher must be one of"):
        run_job(TABULAR, {}, context=context(tmp_path, dataset), launcher="ssh")


def test_kill_9_then_resume_ends_with_the_same_weights(
    tmp_path: Path, dataset: PreparedDataset
) -> None:
    args = ["--hidden", "[16]", "--dropout", "0.2", "--epochs", "3", "--batch_size", "16"]
    args += ["--checkpoint_every", "20", "--seed", "5"]
    command = [sys.executable, "-m", "ratchet.training.tabular", *args]

    def env(name: str) -> dict[str, str]:
        return {**os.environ, **context(tmp_path, dataset, name).to_env()}

    whole = subprocess.run(command, env=env("whole"), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    victim = subprocess.Popen(command, env=env("killed"), stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed" / "checkpoints" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.01)
    assert victim.poll() is None, "training ended before a checkpoint could be interrupted"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    interrupted_at = torch.load(checkpoint, weights_only=False)["step"]
    resumed = subprocess.run(
        command, env=env("killed"), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    final = torch.load(checkpoint, weights_only=False)
    assert final["step"] > interrupted_at
    expected = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    got = torch.load(tmp_path / "killed" / "model.pt", weights_only=True)
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), name
    metrics = json.loads((tmp_path / "killed" / "model.json").read_text())["metrics"]
    assert metrics == json.loads((tmp_path / "whole" / "model.json").read_text())["metrics"]


def test_two_ddp_processes_match_one_at_the_same_global_batch(
    tmp_path: Path, dataset: PreparedDataset
) -> None:
    common = {"hidden": [16], "epochs": 4, "learning_rate": 0.003, "seed": 2, "patience": 100}
    one = run_job(TABULAR, {**common, "batch_size": 64}, context=context(tmp_path, dataset, "one"))
    two = run_job(
        TABULAR,
        {**common, "batch_size": 32},  # per rank: 2 x 32 = the same global batch of 64
        context=context(tmp_path, dataset, "two"),
        launcher="torchrun",
        nproc=2,
    )
    assert one.state == "COMPLETE", one.logs.read_text()
    assert two.state == "COMPLETE", two.logs.read_text()
    single, ddp = one.metrics["validation_loss"], two.metrics["validation_loss"]
    assert abs(single - ddp) / single < 0.05
    assert two.metrics["test_accuracy"] > 0.7
    # only rank 0 reports (one final report, not two) and writes the bundle
    assert sum("test_loss" in r["metrics"] for r in two.reports) == 1
    assert (two.model_dir / "model.pt").exists()


def test_reports_become_the_runs_time_series_and_tensorboard_events(
    tmp_path: Path, dataset: PreparedDataset, store: MetadataStore
) -> None:
    from ratchet.tracking import Tracker

    tracker = Tracker(store, "training", run_root=tmp_path / "runs")
    run = tracker.start_run("trial-1", tensorboard=True)

    def train() -> None:
        for step in range(1, 6):
            report(step, loss=1.0 / step, learning_rate=0.1)

    result = run_job(
        train, {}, context=context(tmp_path, dataset), launcher="inprocess", store=store, run=run
    )
    run.end()
    series = run.get_time_series_df()
    assert series["loss"].tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    jobs = store.find_executions(type="TrainingJob", context=run.id)
    assert [j.id for j in jobs] == [result.execution_id]
    tracker.close()


def test_adaptive_prefetch_trains_the_same_weights_as_a_fixed_queue(
    tmp_path: Path, dataset: PreparedDataset
) -> None:
    common = {"hidden": [8], "epochs": 2, "batch_size": 64, "threads": 1}
    for prefetch in ("adaptive", "fixed"):
        result = run_job(
            TABULAR, {**common, "prefetch": prefetch}, context=context(tmp_path, dataset, prefetch)
        )
        assert result.state == "COMPLETE", result.logs
    adaptive = torch.load(tmp_path / "adaptive" / "model.pt", weights_only=True)
    fixed = torch.load(tmp_path / "fixed" / "model.pt", weights_only=True)
    assert adaptive.keys() == fixed.keys()
    assert all(torch.equal(adaptive[k], fixed[k]) for k in adaptive)
