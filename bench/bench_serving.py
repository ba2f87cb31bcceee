"""Benchmark of batch prediction and the online endpoint against the bundle called in process.

Owns the cases, their sizes, the generated data, the two bundles and the Markdown report.
Run it from anywhere:

    python bench/bench_serving.py [--quick] [--out FILE]

The parent generates a table (8 numeric features, categoricals of 5, 20, 200 and 1,000
values, a binary label from a logistic rule), prepares 50,000 rows of it as a dataset,
trains two bundles on it — LightGBM with ratchet's defaults (100 trees of 31 leaves)
and the MLP (hidden 64, 64; one epoch) — and writes 1,000,000 further raw rows, label
dropped, as one Parquet file. Each case runs in a fresh interpreter (see harness.py):

- batch-<model>: `predict_file` from that Parquet file to a Parquet file (reading,
  checking, predicting and writing timed), against `bundle.predict_table` on the same
  rows already in memory (the read not timed), and against the model alone
  (`bundle.predictor.predict` on the rows transformed beforehand, not timed): the
  ceiling no pipeline around the model can pass. The three run `repeats` times,
  interleaved; the median is reported, with the peak RSS growth of the run.
- endpoint-<model>: `ratchet serve BUNDLE --port 0` started as a subprocess; this
  process is the load generator: one record per request (1,000 distinct records in
  turn, bodies encoded beforehand), keep-alive HTTP/1.1 over raw asyncio streams so the
  client's own cost stays small, for `seconds` with 1 connection (latency) and with 4
  (throughput), after a 2-second warm-up. Then `bundle.predict_records([record])` in
  this process on the same records (the server idle), one call after another, with one
  model thread as the server has (`--threads 1`, its default): the in-process p50 and
  p99. Overhead = p50 over HTTP (1 connection) - p50 in process.

Every batch run checks its row count and the sum of its probabilities against the
in-process result; every HTTP answer must be 200, and the first one's probabilities
must equal the in-process ones. `--quick` uses tiny sizes and judges no goal.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import harness
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ENV = {"DO_NOT_TRACK": "1"}
GOAL_ROWS_PER_SECOND = 200_000
GOAL_OVERHEAD_MS = 2.0
CARDINALITIES = {"plan": 5, "region": 20, "city": 200, "device": 1000}


@dataclass(frozen=True)
class Sizes:
    rows: int = 1_000_000
    train_rows: int = 50_000
    repeats: int = 5
    seconds: float = 30.0  # load per connection count
    warmup: float = 2.0
    connections: tuple[int, ...] = (1, 4)
    records: int = 1_000  # distinct request bodies
    in_process_calls: int = 20_000


QUICK = replace(
    Sizes(),
    rows=20_000,
    train_rows=3_000,
    repeats=1,
    seconds=1.0,
    warmup=0.3,
    in_process_calls=300,
)


@dataclass(frozen=True)
class Result:
    case: str
    system: str
    count: int  # rows or requests
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mb: float | None = None
    what: str = ""


# ---- data and bundles ------------------------------------------------------------------


def table(rows: int, *, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(size=rows) for i in range(8)}
    for name, values in CARDINALITIES.items():
        data[name] = np.char.add(f"{name[0]}", rng.integers(0, values, rows).astype(str))
    frame = pd.DataFrame(data)
    logit = frame.x0 - 0.5 * frame.x1 + 0.3 * frame.x2 * frame.x3 + (frame.plan == "p1") - 0.3
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def generate(sizes: Sizes, root: Path) -> Path:
    """The raw rows to predict and the two bundles, under `root`."""
    from ratchet.data.engines.local import prepare_dataset
    from ratchet.training.classic import train_classic
    from ratchet.training.contract import TrainingContext
    from ratchet.training.jobs import run_job
    from ratchet.training.tabular import train_tabular

    dataset = prepare_dataset(
        table(sizes.train_rows, seed=1), root / "dataset", label="label", shard_rows=25_000
    ).folder
    threads = os.cpu_count() or 1
    train_classic("lightgbm", {}, dataset=dataset, model_dir=root / "lightgbm", threads=threads)
    job = run_job(
        train_tabular,
        {"hidden": [64, 64], "epochs": 1, "batch_size": 512},
        context=TrainingContext(model_dir=root / "mlp", dataset=str(dataset)),
        launcher="inprocess",
    )
    harness.check("MLP training", job.state, "COMPLETE")
    raw = table(sizes.rows, seed=2).drop(columns=["label"])
    pq.write_table(pa.Table.from_pandas(raw, preserve_index=False), root / "rows.parquet")
    return root


# ---- batch -----------------------------------------------------------------------------


def _batch(sizes: Sizes, root: Path, model: str) -> list[Result]:
    from ratchet.prediction import predict_file
    from ratchet.training.bundle import load_bundle

    bundle = load_bundle(root / model)
    rows = pq.read_table(root / "rows.parquet")
    transformed = bundle.transform.apply(rows)
    features = {}  # what Bundle.predict_table hands its predictor
    for f in bundle.transform.features:
        array = transformed[f.name].to_numpy()
        features[f.name] = array.astype(np.int64) if array.dtype.kind in "iu" else array
    runs: dict[str, list[tuple[float, float | None]]] = {"file": [], "table": [], "model": []}
    for run in range(sizes.repeats):  # interleaved, so a busy moment hits all alike
        with harness.measured() as timed:
            summary = predict_file(bundle, root / "rows.parquet", Path(f"out-{run}.parquet"))
        runs["file"].append((timed.seconds, timed.rss_mb))
        harness.check("rows predicted", (summary.predicted, summary.malformed), (rows.num_rows, 0))
        with harness.measured() as timed:
            values = bundle.predict_table(rows)
        runs["table"].append((timed.seconds, timed.rss_mb))
        with harness.measured() as timed:
            bundle.predictor.predict(features)
        runs["model"].append((timed.seconds, timed.rss_mb))
        expected = float(np.asarray(values)[:, 1].sum())
        got = pq.read_table(summary.output, columns=["probability_1"])["probability_1"]
        # float32 models add up a little differently batch by batch than all at once
        relative = abs(float(got.to_numpy().sum()) - expected) / max(abs(expected), 1.0)
        harness.check(f"probability sum ({relative:.1e} apart)", relative < 1e-6, True)
    what = f"{bundle.framework} bundle; median of {sizes.repeats}"
    systems = {
        "file": f"ratchet predict_file ({model})",
        "table": f"in-process predict_table ({model})",
        "model": f"in-process model alone ({model})",
    }
    return [
        _median("batch", systems[kind], rows.num_rows, found, what) for kind, found in runs.items()
    ]


def _median(
    case: str, system: str, count: int, runs: list[tuple[float, float | None]], what: str
) -> Result:
    seconds = statistics.median(s for s, _ in runs)
    rates = " / ".join(f"{count / s:,.0f}" for s, _ in runs)
    rss = max((m for _, m in runs if m is not None), default=None)
    return Result(case, system, count, seconds, rss_mb=rss, what=f"{what} ({rates} rows/s)")


def batch_lightgbm(sizes: Sizes, root: Path) -> list[Result]:
    return _batch(sizes, root, "lightgbm")


def batch_mlp(sizes: Sizes, root: Path) -> list[Result]:
    return _batch(sizes, root, "mlp")


# ---- endpoint --------------------------------------------------------------------------


def _serve(bundle: Path) -> tuple[subprocess.Popen[str], int]:
    """`ratchet serve BUNDLE --port 0`, its port read from its first line."""
    command = [sys.executable, "-c", "from ratchet.cli import main; main()"]
    proc = subprocess.Popen(
        [*command, "serve", str(bundle), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "RATCHET_HOME": str(Path("home").absolute())},
    )
    assert proc.stdout is not None
    found = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
    if found is None:
        proc.kill()
        raise RuntimeError("ratchet serve did not say where it listens")
    return proc, int(found.group(1))


def _requests(records: list[dict[str, Any]]) -> list[bytes]:
    head = "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    bodies = [json.dumps(r).encode() for r in records]
    return [f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]


async def _connection(
    port: int, requests: list[bytes], start: int, until: float, latencies: list[float]
) -> int:
    """Send requests one after another on one connection until `until`; count non-200s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failures, i = 0, start
    while time.perf_counter() < until:
        sent = time.perf_counter()
        writer.write(requests[i % len(requests)])
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: (\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        latencies.append(time.perf_counter() - sent)
        failures += not head.startswith(b"HTTP/1.1 200")
        i += 1
    writer.close()
    return failures


def _load(port: int, requests: list[bytes], connections: int, seconds: float) -> list[float]:
    latencies: list[float] = []

    async def run() -> int:
        until = time.perf_counter() + seconds
        done = await asyncio.gather(
            *(_connection(port, requests, c * 97, until, latencies) for c in range(connections))
        )
        return sum(done)

    failures = asyncio.run(run())
    harness.check("non-200 answers", failures, 0)
    return latencies


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return float(p50), float(p99)


def _endpoint(sizes: Sizes, root: Path, model: str) -> list[Result]:
    import httpx

    from ratchet.training.bundle import load_bundle

    records = pq.read_table(root / "rows.parquet").slice(0, sizes.records).to_pylist()
    requests = _requests(records)
    server, port = _serve(root / model)
    results = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                first = httpx.post(f"http://127.0.0.1:{port}/predict", json=records[0])
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        bundle = load_bundle(root / model)
        expected = [round(p, 9) for p in bundle.predict_records([records[0]])[0].tolist()]
        got = [round(p, 9) for p in first.json()["probabilities"].values()]
        harness.check("HTTP answer vs in-process", got, expected)
        _load(port, requests, 1, sizes.warmup)
        for connections in sizes.connections:
            latencies = _load(port, requests, connections, sizes.seconds)
            p50, p99 = _percentiles(latencies)
            system = f"HTTP, {connections} connection" + ("s" if connections > 1 else "")
            what = f"ratchet serve ({bundle.framework}), one record a request, loopback"
            results.append(
                Result("endpoint", f"{system} ({model})", len(latencies), sizes.seconds, p50, p99,
                       what=what)
            )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    import torch

    torch.set_num_threads(1)  # as the server runs its models (`ratchet serve --threads 1`)
    timings = []
    for i in range(sizes.in_process_calls):
        started = time.perf_counter()
        bundle.predict_records([records[i % len(records)]])
        timings.append(time.perf_counter() - started)
    p50, p99 = _percentiles(timings)
    results.append(
        Result("endpoint", f"in-process predict_records ({model})", len(timings), sum(timings),
               p50, p99, what="bundle.predict_records([record]), same records, one at a time")
    )  # fmt: skip
    return results


def endpoint_lightgbm(sizes: Sizes, root: Path) -> list[Result]:
    return _endpoint(sizes, root, "lightgbm")


def endpoint_mlp(sizes: Sizes, root: Path) -> list[Result]:
    return _endpoint(sizes, root, "mlp")


CASES: dict[str, Callable[[Sizes, Path], list[Result]]] = {
    "batch-lightgbm": batch_lightgbm,
    "batch-mlp": batch_mlp,
    "endpoint-lightgbm": endpoint_lightgbm,
    "endpoint-mlp": endpoint_mlp,
}


# ---- running and reporting -------------------------------------------------------------


def run_all(sizes: Sizes, *, quick: bool, data: Path) -> list[Result]:
    results = []
    for name in CASES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        found = harness.spawn(
            __file__,
            name,
            quick=quick,
            env=ENV,
            clear_prefixes=("RATCHET_",),
            extra=["--data", str(data)],
        )
        results += [Result(**r) for r in found]
    return results


def report(results: list[Result], *, quick: bool) -> str:
    lines = [
        "| case | system | rows or requests | seconds | per second | p50 ms | p99 ms | "
        "peak RSS growth MB | what |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        cells = [
            r.case,
            r.system,
            f"{r.count:,}",
            f"{r.seconds:.2f}",
            f"{r.count / r.seconds:,.0f}",
            f"{r.p50_ms:.3f}" if r.p50_ms is not None else "-",
            f"{r.p99_ms:.3f}" if r.p99_ms is not None else "-",
            f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-",
            r.what,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(["Goals are not judged at --quick sizes."] if quick else goals(results))]
    lines += ["", environment(quick)]
    return "\n".join(lines) + "\n"


def goals(results: list[Result]) -> list[str]:
    by_system = {r.system: r for r in results}
    lines = ["Goals:"]
    for model in ("lightgbm", "mlp"):
        batch = by_system[f"ratchet predict_file ({model})"]
        alone = by_system[f"in-process model alone ({model})"]
        rate, ceiling = batch.count / batch.seconds, alone.count / alone.seconds
        verdict = "met" if rate >= GOAL_ROWS_PER_SECOND else "NOT met"
        lines.append(
            f"- batch prediction, {model}: {rate:,.0f} rows/s, Parquet in and out, "
            f"{rate / ceiling:.0%} of the model alone's {ceiling:,.0f} "
            f"(goal >= {GOAL_ROWS_PER_SECOND:,}): {verdict}"
        )
    for model in ("lightgbm", "mlp"):
        http = by_system[f"HTTP, 1 connection ({model})"]
        local = by_system[f"in-process predict_records ({model})"]
        assert http.p50_ms is not None and local.p50_ms is not None
        overhead = http.p50_ms - local.p50_ms
        verdict = "met" if overhead < GOAL_OVERHEAD_MS else "NOT met"
        lines.append(
            f"- endpoint overhead, {model}: p50 {http.p50_ms:.2f} ms over HTTP - "
            f"{local.p50_ms:.2f} ms in process = {overhead:.2f} ms "
            f"(goal < {GOAL_OVERHEAD_MS:g} ms): {verdict}"
        )
    return lines


def environment(quick: bool) -> str:
    from importlib.metadata import version

    packages = ("ratchet", "fastapi", "uvicorn", "pydantic", "pyarrow", "torch", "lightgbm")
    versions = [f"{p} {version(p)}" for p in packages]
    cpu = harness.cpu()
    return (
        f"Python {platform.python_version()}, {', '.join(versions)}; {cpu}, "
        f"{os.cpu_count()} CPUs" + ("; --quick sizes" if quick else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_arguments(
        __doc__.splitlines()[0],
        CASES,
        argv,
        quick_help="tiny sizes and a 1-second load, goals not judged",
        configure=lambda p: p.add_argument(
            "--data", type=Path, help="the generated rows and bundles (a case alone makes its own)"
        ),
    )
    sizes = QUICK if args.quick else Sizes()
    if args.case:

        def run_case(tmp: Path) -> list[Result]:
            data = args.data or generate(sizes, tmp / "data")
            return CASES[args.case](sizes, data)

        results = harness.in_fresh_folder(args.case, run_case)
        if args.json:
            harness.emit([asdict(r) for r in results])
        else:
            print(results)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-serving-data-") as data:
        print("generating the rows and training the bundles ...", file=sys.stderr, flush=True)
        results = run_all(sizes, quick=args.quick, data=generate(sizes, Path(data)))
    harness.publish(report(results, quick=args.quick), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
