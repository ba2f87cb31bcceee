from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ratchet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ratchet.metadata import MetadataStore
from ratchet.training.contract import report
from ratchet.tuning.results import find_hyperparameters, record_best
from ratchet.tuning.space import Metric, Parameter, StudyConfig
from ratchet.tuning.study import EarlyStopping, Study
from ratchet.tuning.trials import TrialTarget, requeue_dead_workers
from ratchet.tuning.warmstart import narrowed, warm_start

X = Parameter("x", "double", low=-5.0, high=5.0)


def config(goal: str = "minimize", algorithm: str = "tpe") -> StudyConfig:
    return StudyConfig(parameters=(X,), metrics=(Metric("score", goal),), algorithm=algorithm)


def quadratic(x: float) -> dict[str, float]:
    return {"score": (x - 1.0) ** 2}


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_the_best_trial_follows_the_goal(store_url: str, goal: str) -> None:
    study = Study.create(f"goal-{goal}", config(goal), url=store_url, seed=0)
    for x in (4.0, 1.5, -3.0):
        [suggestion] = study.suggest()
        study.complete_trial(suggestion.number, quadratic(x))
    scores = sorted(t.metrics["score"] for t in study.trials())
    [best] = study.best_trials()
    # minimizing must never pick the worst (largest) score, nor maximizing the smallest
    assert best.metrics["score"] == (scores[0] if goal == "minimize" else scores[-1])


def test_ask_tell_with_measurements_and_a_reloaded_study(store_url: str) -> None:
    study = Study.create("asktell", config(), url=store_url, seed=1)
    [a, b] = study.suggest(2)
    assert a.number != b.number and -5 <= float(a.parameters["x"]) <= 5
    assert study.add_measurement(a.number, 1, {"score": 3.0}) is False
    study.complete_trial(a.number, {"score": 2.0})
    study.complete_trial(b.number, infeasible="out of memory")
    again = Study.load("asktell", url=store_url)
    states = {t.number: t.state for t in again.trials()}
    assert states == {a.number: "COMPLETE", b.number: "FAILED"}
    assert again.trial(a.number).intermediate == {1: 3.0}
    assert again.trial(b.number).attributes["reason"] == "out of memory"
    with pytest.raises(FailedPrecondition, match="is COMPLETE, not running"):
        again.complete_trial(a.number, {"score": 1.0})
    with pytest.raises(InvalidArgument, match="reported no 'score'"):
        [c] = again.suggest()
        again.complete_trial(c.number, {"loss": 1.0})
    with pytest.raises(AlreadyExists, match="already exists"):
        Study.create("asktell", config(), url=store_url)
    with pytest.raises(NotFound, match="no study 'nope'"):
        Study.load("nope", url=store_url)


def test_optimize_records_each_trial_as_a_run_and_a_job(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    study = Study.create("opt", config(), url=store_url, seed=2)
    seen = []
    trials = study.optimize(
        TrialTarget(quadratic),
        max_trials=12,
        parallel_trials=2,
        root=tmp_path,
        store=store,
        on_trial=seen.append,
    )
    assert len(trials) == 12 == len(seen)
    assert {t.state for t in trials} == {"COMPLETE"}
    assert len(store.find_executions(type="TrainingJob")) == 12
    runs = store.find_contexts(type="ExperimentRun")
    assert len([r for r in runs if r.name.startswith("opt/trial-")]) == 12
    best = study.best_trials()[0]
    assert best.metrics["score"] == min(t.metrics["score"] for t in trials)
    # the study counts finished trials: asking for 12 again runs nothing more
    assert study.optimize(TrialTarget(quadratic), max_trials=12, root=tmp_path) == []
    artifact = record_best(study, store, fixed={"epochs": 5})
    assert artifact.custom_properties["values"] == {"epochs": 5, "x": best.parameters["x"]}
    assert [a.id for a in find_hyperparameters(store, "opt")] == [artifact.id]


def test_early_stopping_stops_poor_trials_and_records_the_step(
    store_url: str, tmp_path: Path
) -> None:
    def curve(x: float) -> dict[str, float]:
        for step in range(1, 11):
            report(step, score=abs(x) + 1.0 / step)
        return {"score": abs(x)}

    stopping = EarlyStopping(rule="median", startup_trials=3)
    study = Study.create("prune", config(), url=store_url, seed=3, early_stopping=stopping)
    trials = study.optimize(TrialTarget(curve), max_trials=15, root=tmp_path)
    stopped = [t for t in trials if t.state == "STOPPED"]
    assert stopped
    assert all(t.stopped_at is not None and t.stopped_at < 10 for t in stopped)


def test_a_crashing_trial_fails_and_the_study_goes_on_until_the_budget(
    store_url: str, tmp_path: Path
) -> None:
    def fragile(x: float) -> dict[str, float]:
        if x > 2:
            raise RuntimeError(f"diverged at x={x:.2f}")
        return {"score": x * x}

    study = Study.create("fragile", config(algorithm="random"), url=store_url, seed=4)
    with pytest.raises(FailedPrecondition, match="over the failure budget of 2"):
        study.optimize(TrialTarget(fragile), max_trials=40, root=tmp_path, failure_budget=2)
    trials = study.trials()
    failed = [t for t in trials if t.state == "FAILED"]
    assert len(failed) == 3
    assert "diverged at x=" in failed[0].attributes["reason"]
    assert any(t.state == "COMPLETE" for t in trials)


def test_warm_start_narrows_around_the_best_and_queues_it(store_url: str, tmp_path: Path) -> None:
    old = Study.create("old", config(), url=store_url, seed=5)
    old.optimize(TrialTarget(quadratic), max_trials=8, root=tmp_path)
    best = old.best_trials()[0]
    new = warm_start(old, "new", top_k=2, narrow=0.2, seed=6)
    [space] = new.config.parameters
    assert space.high is not None and space.low is not None
    assert space.high - space.low <= 2.0 + 1e-9
    assert space.low <= float(best.parameters["x"]) <= space.high
    first = new.optimize(TrialTarget(quadratic), max_trials=2, root=tmp_path)
    assert first[0].parameters["x"] == pytest.approx(best.parameters["x"])
    assert narrowed(config(), {"x": 5.0}, 0.5).parameters[0].low == 2.5


def test_trials_of_a_dead_worker_are_failed_and_queued_again(store_url: str) -> None:
    Study.create("crashed", config(), url=store_url, seed=7)
    orphan = (
        "from ratchet.tuning.study import Study\n"
        "from ratchet.tuning.trials import WORKER_ATTR, worker_name\n"
        f"study = Study.load('crashed', url={store_url!r})\n"
        "trial = study.optuna.ask()\n"
        "trial.set_user_attr(WORKER_ATTR, worker_name())\n"
        "study.config.suggest(trial)\n"
    )
    subprocess.run([sys.executable, "-c", orphan], check=True, env=os.environ.copy())
    study = Study.load("crashed", url=store_url)
    [running] = study.trials()
    assert running.state == "RUNNING"
    assert requeue_dead_workers(study) == [running.number]
    assert study.trial(running.number).state == "FAILED"
    [retry] = study.suggest()
    assert retry.parameters["x"] == running.parameters["x"]
    assert not math.isnan(float(retry.parameters["x"]))


WORKER = """
import json, sys
from pathlib import Path
from ratchet.training.contract import context
from ratchet.tuning.space import Metric, Parameter, StudyConfig
from ratchet.tuning.study import Study
from ratchet.tuning.trials import TrialTarget

url, folder, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
config = StudyConfig(
    parameters=(Parameter("x", "double", low=-5.0, high=5.0),),
    metrics=(Metric("score", "minimize"),),
    algorithm="random",
)
study = Study.create("shared", config, url=url, seed=seed, exist_ok=True)

def trial(x):
    with (folder / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"trial": context().trial_id, "x": x}) + "\\n")
    return {"score": (x - 1.0) ** 2}

study.optimize(TrialTarget(trial), max_trials=30, root=folder)
"""


@pytest.mark.postgres
def test_three_workers_share_one_study_without_losing_or_repeating_a_trial(
    pg_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [
        subprocess.Popen([sys.executable, str(script), pg_url, str(tmp_path), str(seed)])
        for seed in range(3)
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0, 0]
    study = Study.load("shared", url=pg_url)
    trials = study.trials()
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(numbers)))  # none lost
    # Each worker stops once the study holds 30 finished trials: the ones in flight then
    # still finish, so a few more than 30 may run, never fewer.
    assert 30 <= len(trials) <= 32
    assert {t.state for t in trials} == {"COMPLETE"}
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert sorted(c["trial"] for c in calls) == sorted(f"shared/{n}" for n in numbers)  # once each
    for call in calls:
        number = int(call["trial"].split("/")[1])
        assert study.trial(number).parameters["x"] == pytest.approx(call["x"])
