"""Benchmark of ratchet tracking against MLflow (SQLite back end) and raw `sqlite3`.

Owns the cases, their sizes and the Markdown report. Run it from anywhere:

    python bench/bench_tracking.py [--quick] [--out FILE]

The parent process runs every case in a fresh subprocess (`--case NAME --json`), each
with its own temporary RATCHET_HOME or `sqlite:///` MLflow store and working folder, so
imports, caches and peak memory of one case never leak into another. A case prints one
JSON line; the parent turns them into a table. `--quick` uses tiny sizes and skips
MLflow (the smoke test in tests/test_bench_smoke.py runs it). Timings include the final
flush or end of run, so every point counted is really stored; each case checks that
afterwards. Peak memory is the growth of VmHWM over the RSS right before the measured
section (the high-water mark is reset there through /proc/self/clear_refs on Linux).
"""

from __future__ import annotations

import logging
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import harness
import numpy as np

METRICS = [f"m{k}" for k in range(10)]
PARAMS = [f"p{k}" for k in range(10)]
ENV = {
    "DO_NOT_TRACK": "1",
    # MLflow reads DO_NOT_TRACK only as "true", so its own switch is set as well.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "GIT_PYTHON_REFRESH": "quiet",
}


@dataclass(frozen=True)
class Sizes:
    single_calls: int = 200_000
    mlflow_single_calls: int = 1_000
    batch_steps: int = 200_000  # x 10 metrics, for the array and raw sqlite3 cases
    batch_chunk: int = 1_000  # steps per log_time_series_batch call / executemany
    dict_steps: int = 100_000  # x 10 metrics, one dict of 10 per call
    mlflow_batch_steps: int = 10_000  # x 10 metrics, log_batch of 1000 points
    runs: int = 10_000
    mlflow_runs: int = 2_000  # also the size of the "df-peer" ratchet case
    mlflow_populate_budget: float = 120.0  # seconds; fewer runs if populating is slower


QUICK = replace(
    Sizes(), single_calls=2_000, batch_steps=2_000, batch_chunk=500, dict_steps=500, runs=100
)


@dataclass(frozen=True)
class Case:
    group: str
    system: str
    reference: bool  # the row the group's ratios are computed against
    mlflow: bool
    run: Callable[[Sizes, Path], Result]


@dataclass
class Result:
    count: int
    unit: str  # "points" or "runs"
    seconds: float
    rss_mb: float | None
    note: str = ""


# ---- measuring ------------------------------------------------------------------------


# ---- ratchet --------------------------------------------------------------------------


def _ratchet_run(home: Path) -> Any:
    from ratchet import tracking

    tracking.init(experiment="bench", home=home)
    return tracking.start_run("run")


def _stored_points(run: Any) -> int:
    return sum(len(block) for block in run._tracker.store.read_time_series(run.id).values())


def ratchet_single_series(sizes: Sizes, tmp: Path) -> Result:
    from ratchet import tracking

    run = _ratchet_run(tmp / "home")
    values = np.random.default_rng(0).random(sizes.single_calls).tolist()
    with harness.measured() as m:
        for step, value in enumerate(values):
            run.log_time_series_metrics({"loss": value}, step=step)
        tracking.end_run()
    harness.check("points", _stored_points(run), sizes.single_calls)
    return Result(sizes.single_calls, "points", m.seconds, m.rss_mb, "log_time_series_metrics")


def ratchet_single_summary(sizes: Sizes, tmp: Path) -> Result:
    from ratchet import tracking

    run = _ratchet_run(tmp / "home")
    values = np.random.default_rng(0).random(sizes.single_calls).tolist()
    with harness.measured() as m:
        for value in values:
            run.log_metrics({"m": value})
        tracking.end_run()
    harness.check("summary", run.get_metrics(), {"m": values[-1]})
    return Result(sizes.single_calls, "points", m.seconds, m.rss_mb, "log_metrics")


def ratchet_batch_arrays(sizes: Sizes, tmp: Path) -> Result:
    from ratchet import tracking

    run = _ratchet_run(tmp / "home")
    steps = np.arange(sizes.batch_steps)
    values = np.random.default_rng(0).random((len(METRICS), sizes.batch_steps))
    chunk = sizes.batch_chunk
    with harness.measured() as m:
        for start in range(0, sizes.batch_steps, chunk):
            run.log_time_series_batch(
                {name: values[k, start : start + chunk] for k, name in enumerate(METRICS)},
                steps=steps[start : start + chunk],
            )
        tracking.end_run()
    points = sizes.batch_steps * len(METRICS)
    harness.check("points", _stored_points(run), points)
    note = f"log_time_series_batch, {chunk} steps x 10 metrics per call"
    return Result(points, "points", m.seconds, m.rss_mb, note)


def ratchet_batch_dict(sizes: Sizes, tmp: Path) -> Result:
    from ratchet import tracking

    run = _ratchet_run(tmp / "home")
    rows = np.random.default_rng(0).random((sizes.dict_steps, len(METRICS))).tolist()
    with harness.measured() as m:
        for step, row in enumerate(rows):
            run.log_time_series_metrics(dict(zip(METRICS, row, strict=True)), step=step)
        tracking.end_run()
    points = sizes.dict_steps * len(METRICS)
    harness.check("points", _stored_points(run), points)
    return Result(points, "points", m.seconds, m.rss_mb, "log_time_series_metrics, 10 per call")


def _populate_ratchet(tracker: Any, runs: int) -> None:
    """Runs as `Tracker.start_run` + `log_params` + `log_metrics` + `end` would leave them."""
    from ratchet.metadata import Context
    from ratchet.tracking.tracker import RUN, run_context_name

    now = time.time()
    experiment = tracker.experiment
    for i in range(runs):
        name = f"run-{i}"
        context = tracker.store.put_context(
            Context(
                RUN,
                run_context_name(experiment.name, name),
                properties={
                    "experiment": experiment.name,
                    "run_name": name,
                    "state": "COMPLETE",
                    "start_time": now,
                    "end_time": now,
                },
                custom_properties={
                    **{f"param.{p}": k * i for k, p in enumerate(PARAMS)},
                    **{f"metric.{n}": k / (i + 1) for k, n in enumerate(METRICS)},
                },
            )
        )
        tracker.store.put_parent_context(experiment.id, context.id)


def _ratchet_df(runs: int, tmp: Path) -> Result:
    from ratchet import tracking

    tracker = tracking.init(experiment="bench", home=tmp / "home")
    started = time.perf_counter()
    _populate_ratchet(tracker, runs)
    populated = time.perf_counter() - started
    with harness.measured() as m:
        frame = tracking.get_experiment_df()
    harness.check("frame shape", frame.shape, (runs, 3 + len(PARAMS) + len(METRICS)))
    note = f"get_experiment_df; populated via MetadataStore in {populated:.0f} s"
    return Result(runs, "runs", m.seconds, m.rss_mb, note)


def ratchet_df(sizes: Sizes, tmp: Path) -> Result:
    return _ratchet_df(sizes.runs, tmp)


def ratchet_df_peer(sizes: Sizes, tmp: Path) -> Result:
    return _ratchet_df(sizes.mlflow_runs, tmp)


# ---- raw sqlite3 ----------------------------------------------------------------------


def raw_batch(sizes: Sizes, tmp: Path) -> Result:
    """The floor: the same points as `ratchet_batch_arrays`, one row each, via executemany."""
    conn = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE points (context_id INTEGER, name TEXT, step INTEGER, "
        "wall_time REAL, value REAL)"
    )
    steps = np.arange(sizes.batch_steps)
    values = np.random.default_rng(0).random((len(METRICS), sizes.batch_steps))
    chunk = sizes.batch_chunk
    insert = "INSERT INTO points VALUES (?, ?, ?, ?, ?)"
    with harness.measured() as m:
        for start in range(0, sizes.batch_steps, chunk):
            now = time.time()
            chunk_steps = steps[start : start + chunk].tolist()
            rows = [
                (1, name, step, now, value)
                for k, name in enumerate(METRICS)
                for step, value in zip(
                    chunk_steps, values[k, start : start + chunk].tolist(), strict=True
                )
            ]
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
    points = sizes.batch_steps * len(METRICS)
    harness.check("rows", conn.execute("SELECT count(*) FROM points").fetchone()[0], points)
    conn.close()
    note = f"executemany + commit per {chunk * len(METRICS)} rows, WAL, synchronous=NORMAL"
    return Result(points, "points", m.seconds, m.rss_mb, note)


# ---- MLflow ---------------------------------------------------------------------------


def _mlflow(tmp: Path) -> tuple[Any, str]:
    """MLflow on a fresh SQLite store, quiet, with its schema created before any timing."""
    import mlflow

    for name in ("mlflow", "alembic", "huey"):
        logging.getLogger(name).setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment("bench", artifact_location=str(tmp / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment_id)
    return mlflow, experiment_id


def mlflow_single(sizes: Sizes, tmp: Path) -> Result:
    mlflow, _ = _mlflow(tmp)
    run_id = mlflow.start_run().info.run_id
    values = np.random.default_rng(0).random(sizes.mlflow_single_calls).tolist()
    with harness.measured() as m:
        for step, value in enumerate(values):
            mlflow.log_metric("loss", value, step=step)
        mlflow.end_run()
    history = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    harness.check("points", len(history), sizes.mlflow_single_calls)
    return Result(sizes.mlflow_single_calls, "points", m.seconds, m.rss_mb, "mlflow.log_metric")


def mlflow_batch(sizes: Sizes, tmp: Path) -> Result:
    from mlflow.entities import Metric

    mlflow, experiment_id = _mlflow(tmp)
    client = mlflow.MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    steps = np.arange(sizes.mlflow_batch_steps)
    values = np.random.default_rng(0).random((len(METRICS), sizes.mlflow_batch_steps))
    chunk = 1000 // len(METRICS)  # log_batch takes at most 1000 metrics
    with harness.measured() as m:
        for start in range(0, sizes.mlflow_batch_steps, chunk):
            now = int(time.time() * 1000)
            chunk_steps = steps[start : start + chunk].tolist()
            batch = [
                Metric(name, value, now, step)
                for k, name in enumerate(METRICS)
                for step, value in zip(
                    chunk_steps, values[k, start : start + chunk].tolist(), strict=True
                )
            ]
            client.log_batch(run_id, metrics=batch)
        client.set_terminated(run_id)
    points = sizes.mlflow_batch_steps * len(METRICS)
    stored = sum(len(client.get_metric_history(run_id, name)) for name in METRICS)
    harness.check("points", stored, points)
    return Result(points, "points", m.seconds, m.rss_mb, "MlflowClient.log_batch of 1000")


def mlflow_df(sizes: Sizes, tmp: Path) -> Result:
    from mlflow.entities import Metric, Param

    mlflow, experiment_id = _mlflow(tmp)
    client = mlflow.MlflowClient()
    started = time.perf_counter()
    runs = 0
    while runs < sizes.mlflow_runs:
        if time.perf_counter() - started > sizes.mlflow_populate_budget:
            break
        run_id = client.create_run(experiment_id, run_name=f"run-{runs}").info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(n, k / (runs + 1), now, 0) for k, n in enumerate(METRICS)],
            params=[Param(p, str(k * runs)) for k, p in enumerate(PARAMS)],
        )
        client.set_terminated(run_id)
        runs += 1
    populated = time.perf_counter() - started
    with harness.measured() as m:
        frame = mlflow.search_runs(experiment_ids=[experiment_id])
    harness.check("frame rows", len(frame), runs)
    note = f"mlflow.search_runs; populated via MlflowClient in {populated:.0f} s"
    if runs < sizes.runs:
        rate = runs / populated
        note += f" (fewer runs than ratchet's {sizes.runs:,}: MLflow populates ~{rate:.0f} runs/s)"
    return Result(runs, "runs", m.seconds, m.rss_mb, note)


# ---- cases and report -----------------------------------------------------------------

SINGLE, BATCH, FRAME = "1 single calls", "2 batched", "3 experiment table"
CASES: dict[str, Case] = {
    "single-series": Case(SINGLE, "ratchet", False, False, ratchet_single_series),
    "single-summary": Case(SINGLE, "ratchet", False, False, ratchet_single_summary),
    "single-mlflow": Case(SINGLE, "MLflow", True, True, mlflow_single),
    "batch-arrays": Case(BATCH, "ratchet", False, False, ratchet_batch_arrays),
    "batch-dict": Case(BATCH, "ratchet", False, False, ratchet_batch_dict),
    "batch-raw": Case(BATCH, "raw sqlite3", True, False, raw_batch),
    "batch-mlflow": Case(BATCH, "MLflow", False, True, mlflow_batch),
    "df": Case(FRAME, "ratchet", False, False, ratchet_df),
    "df-peer": Case(FRAME, "ratchet", False, True, ratchet_df_peer),
    "df-mlflow": Case(FRAME, "MLflow", True, True, mlflow_df),
}
GOAL_POINTS_PER_S = 500_000
GOAL_RAW_RATIO = 0.25
GOAL_DF_SECONDS = 1.0


def run_case(name: str, quick: bool) -> Result:
    sizes = QUICK if quick else Sizes()
    return harness.in_fresh_folder(name, lambda tmp: CASES[name].run(sizes, tmp))


def spawn_case(name: str, quick: bool) -> Result:
    """Run one case in a fresh interpreter and read back its result."""
    found = harness.spawn(
        __file__, name, quick=quick, env=ENV, clear_prefixes=("RATCHET_", "MLFLOW_")
    )
    return Result(**found)


def _rate(result: Result) -> float:
    return result.count / result.seconds


def report(results: dict[str, Result], quick: bool) -> str:
    """The Markdown table, the goals and the environment."""
    lines = [
        "| case | system | points or runs | seconds | points/s (runs/s) | ratio vs ref | "
        "peak RSS growth MB | what |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    references = {c.group: results[n] for n, c in CASES.items() if c.reference and n in results}
    for name, result in results.items():
        case = CASES[name]
        ref = references.get(case.group)
        ratio = "ref" if case.reference else f"{_rate(result) / _rate(ref):,.2f}x" if ref else "-"
        rss = "-" if result.rss_mb is None else f"{result.rss_mb:.1f}"
        lines.append(
            f"| {name} | {case.system} | {result.count:,} {result.unit} | "
            f"{result.seconds:.3f} | {_rate(result):,.0f} | {ratio} | {rss} | {result.note} |"
        )
    lines += ["", "Ratios are rates (points/s or runs/s) over the group's `ref` row.", ""]
    lines += _goals(results)
    lines += ["", _environment(quick)]
    return "\n".join(lines) + "\n"


def _goals(results: dict[str, Result]) -> list[str]:
    goals = []
    raw = results.get("batch-raw")
    for name in ("batch-arrays", "batch-dict"):
        if name in results and raw is not None:
            rate, ratio = _rate(results[name]), _rate(results[name]) / _rate(raw)
            ok = rate >= GOAL_POINTS_PER_S and ratio >= GOAL_RAW_RATIO
            goals.append(
                f"- {name}: {rate:,.0f} points/s, {ratio:.2f}x raw sqlite3 "
                f"(goal >= {GOAL_POINTS_PER_S:,} and >= {GOAL_RAW_RATIO}x): "
                f"{'met' if ok else 'NOT met'}"
            )
    if "df" in results:
        df = results["df"]
        ok = df.seconds < GOAL_DF_SECONDS
        goals.append(
            f"- get_experiment_df over {df.count:,} runs: {df.seconds:.2f} s "
            f"(goal < {GOAL_DF_SECONDS} s): {'met' if ok else 'NOT met'}"
        )
    return ["Goals:", *goals]


def _environment(quick: bool) -> str:
    versions = []
    for package in ("ratchet", "mlflow", "sqlalchemy", "numpy", "pandas"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:
            continue
    cpu = harness.cpu()
    return (
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{', '.join(versions)}; {cpu}, {os.cpu_count()} CPUs"
        + ("; --quick sizes" if quick else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_arguments(
        __doc__.splitlines()[0], CASES, argv, quick_help="tiny sizes, no MLflow"
    )
    if args.case:
        os.environ.update(ENV)
        result = run_case(args.case, args.quick)
        if args.json:
            harness.emit(asdict(result))
        else:
            print(result)
        return 0
    results = {}
    for name, case in CASES.items():
        if args.quick and case.mlflow:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = spawn_case(name, args.quick)
    text = report(results, args.quick)
    harness.publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
