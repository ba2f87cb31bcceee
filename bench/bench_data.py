"""Benchmark of the data pipeline: ratchet's local engine against Beam and plain pandas.

On a generated 1,000,000-row x 20-column mixed table (10 numeric, 9 categorical with
1,000 values, a label): the whole pipeline (statistics, schema, split, transform,
sharded export) on the local engine, on the Beam engine (DirectRunner) and in plain
pandas, and statistics alone; the local and Beam pipelines again on 100,000 rows of
the same layout, where Beam's fixed start-up cost weighs more; then a generated CSV of
--csv-mb megabytes streamed through statistics, reporting the peak RSS growth. Each
case runs in a fresh interpreter (see harness.py). --quick skips pandas and Beam.

    python bench/bench_data.py [--quick] [--csv-mb 2048] [--out FILE]
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import harness
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ENV = {"DO_NOT_TRACK": "1"}
BEAM = "Beam DirectRunner"


@dataclass(frozen=True)
class Result:
    case: str
    system: str
    rows: int
    seconds: float
    rss_mb: float | None
    what: str


def generate(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(10):
        columns[f"num{i}"] = rng.normal(size=rows) if i % 2 else rng.integers(0, 1000, rows)
    values = np.array([f"v{j}" for j in range(1000)])
    for i in range(9):
        columns[f"cat{i}"] = pa.array(values[rng.integers(0, 1000, rows)])
    columns["label"] = rng.integers(0, 2, rows)
    return pa.table(columns)


def ratchet_pipeline(rows: int, tmp: Path) -> Result:
    from ratchet.data.engines.local import prepare_dataset

    pq.write_table(generate(rows), tmp / "data.parquet")
    with harness.measured() as m:
        out = prepare_dataset(tmp / "data.parquet", tmp / "out", label="label")
    harness.check("rows exported", sum(out.rows.values()), rows)
    return Result(
        "pipeline",
        "ratchet local",
        rows,
        m.seconds,
        m.rss_mb,
        "stats, schema, split, transform, sharded export",
    )


def beam_pipeline(rows: int, tmp: Path) -> Result:
    from ratchet.data.engines import beam

    pq.write_table(generate(rows), tmp / "data.parquet")
    with harness.measured() as m:
        out = beam.prepare_dataset(tmp / "data.parquet", tmp / "out", label="label")
    harness.check("rows exported", sum(out.rows.values()), rows)
    return Result(
        "pipeline",
        BEAM,
        rows,
        m.seconds,
        m.rss_mb,
        "the same steps as two Beam pipelines, read and export on the workers",
    )


def pandas_pipeline(rows: int, tmp: Path) -> Result:
    import pandas as pd

    pq.write_table(generate(rows), tmp / "data.parquet")
    with harness.measured() as m:
        frame = pd.read_parquet(tmp / "data.parquet")
        numeric = [c for c in frame.columns if c.startswith("num")]
        categorical = [c for c in frame.columns if c.startswith("cat")]
        frame[numeric].describe(percentiles=[i / 10 for i in range(1, 10)])
        for column in categorical:
            frame[column].value_counts()
        bucket = (pd.util.hash_pandas_object(frame, index=False).to_numpy() % 100).astype(int)
        split = np.where(bucket < 80, 0, np.where(bucket < 90, 1, 2))
        train = frame[split == 0]
        means, stds = train[numeric].mean(), train[numeric].std(ddof=0)
        vocab = {
            c: {v: i for i, v in enumerate(train[c].value_counts().index)} for c in categorical
        }
        out = frame.copy()
        out[numeric] = (frame[numeric] - means) / stds
        for column in categorical:
            out[column] = frame[column].map(vocab[column]).fillna(len(vocab[column])).astype(int)
        for position, name in enumerate(("train", "validation", "test")):
            out[split == position].to_parquet(tmp / f"{name}.parquet")
        frame[split == 2].to_parquet(tmp / "raw_test.parquet")
    return Result(
        "pipeline",
        "pandas",
        rows,
        m.seconds,
        m.rss_mb,
        "describe, value_counts, hash split, z-score and vocab, to_parquet",
    )


def ratchet_stats(rows: int, tmp: Path) -> Result:
    from ratchet.data.stats import compute_statistics

    table = generate(rows)
    with harness.measured() as m:
        stats = compute_statistics(table.to_batches(max_chunksize=262_144), label="label")
    harness.check("rows described", stats.rows, rows)
    return Result("stats", "ratchet", rows, m.seconds, m.rss_mb, "compute_statistics, 2 threads")


def pandas_stats(rows: int, tmp: Path) -> Result:
    frame = generate(rows).to_pandas()
    with harness.measured() as m:
        frame.describe(percentiles=[i / 10 for i in range(1, 10)])
        for column in frame.columns:
            if column.startswith("cat"):
                frame[column].value_counts()
    return Result("stats", "pandas", rows, m.seconds, m.rss_mb, "describe + value_counts")


def csv_stream(megabytes: int, tmp: Path) -> Result:
    from ratchet.data.io import open_source
    from ratchet.data.stats import compute_statistics

    block = generate(200_000, seed=1)
    path = tmp / "big.csv"
    with pacsv.CSVWriter(str(path), block.schema) as writer:
        while path.stat().st_size < megabytes * 1024 * 1024:
            writer.write_table(block)
    size_mb = path.stat().st_size / 1024 / 1024
    with harness.measured() as m:
        stats = compute_statistics(open_source(path, batch_rows=262_144).batches())
    return Result(
        "csv-stream",
        "ratchet",
        stats.rows,
        m.seconds,
        m.rss_mb,
        f"statistics over a {size_mb:,.0f} MB CSV, streamed",
    )


CASES = {
    "ratchet-pipeline": ratchet_pipeline,
    "beam-pipeline": beam_pipeline,
    "pandas-pipeline": pandas_pipeline,
    "ratchet-pipeline-small": ratchet_pipeline,
    "beam-pipeline-small": beam_pipeline,
    "ratchet-stats": ratchet_stats,
    "pandas-stats": pandas_stats,
    "csv-stream": csv_stream,
}


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_arguments(
        __doc__.splitlines()[0],
        CASES,
        argv,
        quick_help="tiny sizes, ratchet only",
        configure=lambda p: p.add_argument(
            "--csv-mb", type=int, default=2048, help="size of the streamed CSV"
        ),
    )
    if args.case:
        if args.case == "csv-stream":
            size = 5 if args.quick else args.csv_mb
        elif args.case.endswith("-small"):
            size = 2_000 if args.quick else 100_000
        else:
            size = 20_000 if args.quick else 1_000_000
        result = harness.in_fresh_folder(args.case, lambda tmp: CASES[args.case](size, tmp))
        harness.emit(asdict(result)) if args.json else print(result)
        return 0
    names = [n for n in CASES if not (args.quick and n.startswith(("pandas", "beam")))]
    extra = ["--csv-mb", str(args.csv_mb)]
    results = [
        Result(
            **harness.spawn(
                __file__, name, quick=args.quick, env=ENV, clear_prefixes=("RATCHET_",), extra=extra
            )
        )
        for name in names
    ]
    text = report(results)
    harness.publish(text + "\n", args.out)
    return 0


def report(results: list[Result]) -> str:
    lines = [
        "| case | system | rows | seconds | rows/s | ratio vs pandas | ratio vs Beam "
        "| peak RSS growth MB | what |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    # A ratio compares the same case on the same number of rows: how many times faster.
    seconds = {(r.case, r.rows, r.system): r.seconds for r in results}

    def ratio(r: Result, baseline: str) -> str:
        base = seconds.get((r.case, r.rows, baseline))
        return f"{base / r.seconds:.1f}x" if base is not None and r.system != baseline else "-"

    for r in results:
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        lines.append(
            f"| {r.case} | {r.system} | {r.rows:,} | {r.seconds:.2f} | "
            f"{r.rows / r.seconds:,.0f} | {ratio(r, 'pandas')} | {ratio(r, BEAM)} | {rss} "
            f"| {r.what} |"
        )
    lines.append("")
    lines.append(
        f"Python {platform.python_version()}, pyarrow {pa.__version__}; "
        f"{platform.processor() or platform.machine()}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
