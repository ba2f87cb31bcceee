"""Benchmark of ratchet's feeder against torch's DataLoader and a plain pyarrow read loop.

Owns the cases, their sizes, the generated shards and the Markdown report. Run it from
anywhere:

    python bench/bench_feeder.py [--quick] [--out FILE]

The parent writes every case's Parquet shards once (20 float32 features and an int64
label per row) into one temporary folder, so all cases read the same files from the
page cache, then runs each case in a fresh interpreter (see harness.py):

- throughput: one epoch of 1,000,000 rows in 8 shards, batches of 1024, read by
  ratchet's `Feeder` (numpy and torch output, shuffled), by a plain
  `pq.ParquetFile(...).iter_batches(1024)` loop (shard order, no shuffle), and by
  `torch.utils.data.DataLoader` over a map-style dataset of in-memory numpy arrays
  (default collate, shuffle=True, num_workers 0 and 2, on fewer rows: it is slow). The
  DataLoader's loading of the arrays is not timed; worker start-up is. The feeder and
  the pyarrow loop run `repeats` times, interleaved, and report their median.
- mirrors: 200 small shards with two copies read through `latency://` (one copy 5x
  slower per read, the slow one listed first); the share of reads the balancer sent to
  the fast copy.
- bursty: shards read through `latency://BASE:SPIKE:EVERY` by a consumer that sleeps a
  fixed time per batch, with a fixed prefetch depth of 1 and with `AdaptivePrefetch`;
  the share of the consumer's time spent waiting. The source alone is timed too, so the
  report shows its mean rate is above the consumer's.

Every timed pass checks its rows and their label sum. `--quick` uses tiny sizes and
judges no goal.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import harness
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ENV = {"DO_NOT_TRACK": "1"}
FEATURES = [f"x{i:02d}" for i in range(20)]
GOAL_LOADER_RATIO = 3.0
GOAL_PYARROW_SHARE = 0.8
GOAL_FAST_SHARE = 0.7
GOAL_WAITING = 0.1


@dataclass(frozen=True)
class Sizes:
    rows: int = 1_000_000
    shards: int = 8
    batch: int = 1024
    loader_rows: int = 250_000  # the DataLoader's share of the rows: it is the slow one
    repeats: int = 3  # feeder and pyarrow runs per figure, interleaved; the median is reported
    mirror_shards: int = 200
    mirror_rows: int = 2_000  # per shard
    fast_ms: float = 10.0  # the fast copy's added latency per read
    slowdown: float = 5.0  # the slow copy's time per read over the fast one's
    bursty_shards: int = 300  # many, so the share of spiking files is close to 1 in `every`
    bursty_rows: int = 8_192  # per shard: 8 batches
    bursty_epochs: int = 1
    base_ms: float = 2.0  # latency of every read
    spike_ms: float = 120.0  # added to one file in `every`
    every: int = 10
    work_ms: float = 3.0  # the consumer's fixed work per batch


QUICK = replace(
    Sizes(),
    rows=20_000,
    shards=4,
    loader_rows=5_000,
    repeats=1,
    mirror_shards=10,
    mirror_rows=500,
    fast_ms=2.0,
    bursty_shards=10,
    bursty_rows=2_048,
    bursty_epochs=1,
    spike_ms=20.0,
    work_ms=1.0,
)


@dataclass(frozen=True)
class Result:
    case: str
    system: str
    rows: int
    seconds: float
    rss_mb: float | None
    what: str
    share: float | None = None  # mirrors: reads sent to the fast copy; bursty: time waiting


# ---- data -----------------------------------------------------------------------------


def write_shards(folder: Path, shards: int, rows: int, *, seed: int) -> None:
    """`shards` Parquet files of `rows` rows: 20 float32 features and an int64 label."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for number in range(shards):
        columns: dict[str, Any] = {
            name: rng.standard_normal(rows, dtype=np.float32) for name in FEATURES
        }
        columns["label"] = rng.integers(0, 10, rows)
        pq.write_table(pa.table(columns), folder / f"part-{number:05d}.parquet")


def generate(sizes: Sizes, data: Path) -> Path:
    write_shards(data / "features", sizes.shards, sizes.rows // sizes.shards, seed=0)
    write_shards(data / "fast", sizes.mirror_shards, sizes.mirror_rows, seed=1)
    shutil.copytree(data / "fast", data / "slow")
    write_shards(data / "bursty", sizes.bursty_shards, sizes.bursty_rows, seed=2)
    return data


def shard_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def label_sum(folder: Path) -> int:
    return sum(
        int(pq.read_table(p, columns=["label"])["label"].to_numpy().sum())
        for p in shard_paths(folder)
    )


def as_numpy(column: Any) -> Any:
    """A column as the feeder hands it out: floating point as float32, the rest as is."""
    array = column.to_numpy(zero_copy_only=False)
    return array.astype(np.float32, copy=False) if array.dtype.kind == "f" else array


def consume(batches: Any, *, work_seconds: float = 0.0) -> tuple[int, int]:
    """Rows and label sum of an iterable of batches, after `work_seconds` per batch."""
    rows = labels = 0
    for batch in batches:
        rows += len(batch["label"])
        labels += int(batch["label"].sum())
        if work_seconds:
            time.sleep(work_seconds)  # the training step
    return rows, labels


# ---- throughput -----------------------------------------------------------------------


def _ratchet(sizes: Sizes, data: Path, output: str) -> Result:
    from ratchet.feeder import Feeder, FeederOptions

    if output == "torch":
        import torch  # noqa: F401  (a trainer has it loaded; its import is not the feeder's)
    folder = data / "features"
    expected = label_sum(folder)
    with harness.measured() as m:
        feeder = Feeder(
            folder, batch_size=sizes.batch, seed=0, options=FeederOptions(output=output)
        )
        rows, labels = consume(feeder)
    feeder.close()
    harness.check("rows served", rows, sizes.rows)
    harness.check("label sum", labels, expected)
    what = f"Feeder, one shuffled epoch, {output} output"
    return Result("throughput", f"ratchet ({output})", rows, m.seconds, m.rss_mb, what)


def ratchet_numpy(sizes: Sizes, data: Path) -> Result:
    return _ratchet(sizes, data, "numpy")


def ratchet_torch(sizes: Sizes, data: Path) -> Result:
    return _ratchet(sizes, data, "torch")


def pyarrow_loop(sizes: Sizes, data: Path) -> Result:
    folder = data / "features"
    expected = label_sum(folder)

    def batches() -> Any:
        for path in shard_paths(folder):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=sizes.batch):
                names = batch.schema.names
                yield {n: as_numpy(c) for n, c in zip(names, batch.columns, strict=True)}

    with harness.measured() as m:
        rows, labels = consume(batches())
    harness.check("rows read", rows, sizes.rows)
    harness.check("label sum", labels, expected)
    what = "ParquetFile.iter_batches, columns to numpy, shard order, no shuffle"
    return Result("throughput", "pyarrow loop", rows, m.seconds, m.rss_mb, what)


def _dataloader(sizes: Sizes, data: Path, workers: int) -> Result:
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Rows(Dataset[dict[str, Any]]):
        def __init__(self, arrays: dict[str, Any], rows: int) -> None:
            self.arrays, self.rows = arrays, rows

        def __len__(self) -> int:
            return self.rows

        def __getitem__(self, index: int) -> dict[str, Any]:
            return {name: array[index] for name, array in self.arrays.items()}

    started = time.perf_counter()
    table = pa.concat_tables(pq.read_table(p) for p in shard_paths(data / "features"))
    arrays = {n: as_numpy(table[n])[: sizes.loader_rows] for n in table.column_names}
    loaded = time.perf_counter() - started
    expected = int(arrays["label"].sum())
    torch.manual_seed(0)
    with harness.measured() as m:
        loader = DataLoader(
            Rows(arrays, sizes.loader_rows),
            batch_size=sizes.batch,
            shuffle=True,
            num_workers=workers,
        )
        rows, labels = consume(loader)
    harness.check("rows served", rows, sizes.loader_rows)
    harness.check("label sum", labels, expected)
    what = (
        f"map-style dataset, default collate, shuffle; arrays loaded beforehand "
        f"in {loaded:.1f} s (not timed)"
    )
    system = f"DataLoader, {workers} workers"
    return Result("throughput", system, rows, m.seconds, m.rss_mb, what)


def dataloader_0(sizes: Sizes, data: Path) -> Result:
    return _dataloader(sizes, data, 0)


def dataloader_2(sizes: Sizes, data: Path) -> Result:
    return _dataloader(sizes, data, 2)


# ---- mirrors and bursts ---------------------------------------------------------------


def latency_url(spec: str, path: Path) -> str:
    return f"latency://{spec}{path.resolve()}"


def read_seconds(urls: list[str]) -> float:
    """Median seconds to read one shard through the feeder's read function."""
    from ratchet.feeder.replicas import read_parquet

    times = []
    for url in urls:
        started = time.perf_counter()
        read_parquet(url)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mirrors(sizes: Sizes, data: Path) -> Result:
    from ratchet.feeder import Feeder, Shard, latency
    from ratchet.feeder.replicas import location

    latency.register()
    fast_paths, slow_paths = shard_paths(data / "fast"), shard_paths(data / "slow")
    sample = slice(0, min(20, len(fast_paths)))
    fast = [latency_url(f"{sizes.fast_ms:g}", p) for p in fast_paths]
    # The slow copy's added latency makes a whole read `slowdown` times the fast one's.
    fast_read_ms = read_seconds(fast[sample]) * 1000
    slow_ms = sizes.fast_ms + (sizes.slowdown - 1) * fast_read_ms
    slow = [latency_url(f"{slow_ms:.1f}", p) for p in slow_paths]
    measured_slowdown = read_seconds(slow[sample]) / read_seconds(fast[sample])
    expected = label_sum(data / "fast")
    # The slow copy is listed first: only what the balancer measures can steer reads away.
    shards = [Shard(p.name, (s, f)) for p, s, f in zip(fast_paths, slow, fast, strict=True)]
    started = time.perf_counter()
    feeder = Feeder(shards, batch_size=sizes.batch, seed=0)
    built = time.perf_counter() - started
    with harness.measured() as m:
        rows, labels = consume(feeder)
    feeder.close()
    harness.check("rows served", rows, sizes.mirror_shards * sizes.mirror_rows)
    harness.check("label sum", labels, expected)
    reads = feeder.balancer.reads
    fast_location = location(fast[0])
    harness.check("reads", sum(reads.values()), sizes.mirror_shards)
    what = (
        f"{sizes.mirror_shards} shards x {sizes.mirror_rows:,} rows, 2 copies: +{sizes.fast_ms:g} "
        f"ms and +{slow_ms:.0f} ms per read (measured {measured_slowdown:.1f}x slower), "
        f"slow one listed first; building the feeder (row counts from the first-listed "
        f"copy) took {built:.1f} s, not timed"
    )
    share = reads[fast_location] / sizes.mirror_shards
    return Result("mirrors", "ratchet", rows, m.seconds, m.rss_mb, what, share)


def bursty_urls(sizes: Sizes, data: Path) -> list[str]:
    spec = f"{sizes.base_ms:g}:{sizes.spike_ms:g}:{sizes.every}"
    return [latency_url(spec, p) for p in shard_paths(data / "bursty")]


def bursty_source(sizes: Sizes, data: Path) -> Result:
    """The source alone: every shard read once, one after the other, as the feeder reads."""
    from ratchet.feeder import latency
    from ratchet.feeder.feeder import table_arrays
    from ratchet.feeder.replicas import read_parquet

    latency.register()
    urls = bursty_urls(sizes, data)
    table_arrays(read_parquet(urls[0].replace(f"{sizes.spike_ms:g}:", "0:")))  # warm-up
    spiked = 0
    with harness.measured() as m:
        for url in urls:
            started = time.perf_counter()
            table_arrays(read_parquet(url))
            spiked += time.perf_counter() - started > (sizes.base_ms + sizes.spike_ms / 2) / 1000
    rows = sizes.bursty_shards * sizes.bursty_rows
    what = (
        f"reads through latency://{sizes.base_ms:g}:{sizes.spike_ms:g}:{sizes.every}, serially; "
        f"{spiked} of {sizes.bursty_shards} shards spike"
    )
    return Result("bursty", "source alone", rows, m.seconds, m.rss_mb, what)


def _bursty(sizes: Sizes, data: Path, adaptive: bool) -> Result:
    from ratchet.feeder import AdaptivePrefetch, Feeder, FeederOptions, latency

    latency.register()
    expected = label_sum(data / "bursty") * sizes.bursty_epochs
    feeder = Feeder(
        bursty_urls(sizes, data),
        batch_size=sizes.batch,
        seed=0,
        epochs=sizes.bursty_epochs,
        policies=[AdaptivePrefetch()] if adaptive else [],
        options=FeederOptions(prefetch_depth=1, max_prefetch_depth=256 if adaptive else 1),
    )
    with harness.measured() as m:
        batches = iter(feeder)
        rows, labels = consume(batches, work_seconds=sizes.work_ms / 1000)
    feeder.close()
    served = sizes.bursty_shards * sizes.bursty_rows * sizes.bursty_epochs
    harness.check("rows served", rows, served)
    harness.check("label sum", labels, expected)
    working = m.seconds - batches.waited
    depths = [c.value for c in feeder.history if c.setting == "prefetch_depth"]
    what = (
        f"{sizes.work_ms:g} ms of work per batch (consumer alone: {rows / working:,.0f} rows/s), "
        f"epochs: {sizes.bursty_epochs}; "
        + (
            f"depth 1 -> max {max(depths, default=1)}, last {feeder.control.prefetch_depth} "
            f"({len(depths)} changes)"
            if adaptive
            else "prefetch depth fixed at 1"
        )
    )
    system = "ratchet, AdaptivePrefetch" if adaptive else "ratchet, depth 1"
    return Result("bursty", system, rows, m.seconds, m.rss_mb, what, batches.waited / m.seconds)


def bursty_fixed(sizes: Sizes, data: Path) -> Result:
    return _bursty(sizes, data, adaptive=False)


def bursty_adaptive(sizes: Sizes, data: Path) -> Result:
    return _bursty(sizes, data, adaptive=True)


CASES: dict[str, Callable[[Sizes, Path], Result]] = {
    "pyarrow-loop": pyarrow_loop,
    "ratchet-numpy": ratchet_numpy,
    "ratchet-torch": ratchet_torch,
    "dataloader-0": dataloader_0,
    "dataloader-2": dataloader_2,
    "mirrors": mirrors,
    "bursty-source": bursty_source,
    "bursty-fixed": bursty_fixed,
    "bursty-adaptive": bursty_adaptive,
}
REPEATED = ("pyarrow-loop", "ratchet-numpy", "ratchet-torch")


# ---- running and reporting ------------------------------------------------------------


def run_all(sizes: Sizes, *, quick: bool, data: Path) -> list[Result]:
    def spawn(name: str) -> Result:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        found = harness.spawn(
            __file__,
            name,
            quick=quick,
            env=ENV,
            clear_prefixes=("RATCHET_",),
            extra=["--data", str(data)],
        )
        return Result(**found)

    runs: dict[str, list[Result]] = {name: [] for name in REPEATED}
    for _ in range(sizes.repeats):  # interleaved, so a busy moment hits every system alike
        for name in REPEATED:
            runs[name].append(spawn(name))
    results = [median_of(found) for found in runs.values()]
    return results + [spawn(name) for name in CASES if name not in REPEATED]


def median_of(results: list[Result]) -> Result:
    seconds = sorted(r.seconds for r in results)
    middle = statistics.median(seconds)
    picked = min(results, key=lambda r: abs(r.seconds - middle))
    if len(results) == 1:
        return picked
    rates = [f"{picked.rows / s:,.0f}" for s in seconds]
    what = f"{picked.what}; median of {len(results)} runs ({' / '.join(rates)} rows/s)"
    return replace(picked, seconds=middle, what=what)


def rate(result: Result) -> float:
    return result.rows / result.seconds


def report(results: list[Result], sizes: Sizes, *, quick: bool) -> str:
    """The Markdown table, the goals and the environment."""
    by_system = {(r.case, r.system): r for r in results}
    pyarrow = by_system.get(("throughput", "pyarrow loop"))
    loaders = [r for r in results if r.system.startswith("DataLoader")]
    best_loader = max(loaders, key=rate, default=None)
    lines = [
        "| case | system | rows | seconds | rows/s | vs pyarrow loop | vs best DataLoader | "
        "share | peak RSS growth MB | what |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        throughput = r.case == "throughput"
        versus_pyarrow = f"{rate(r) / rate(pyarrow):.2f}x" if throughput and pyarrow else "-"
        versus_loader = f"{rate(r) / rate(best_loader):.2f}x" if throughput and best_loader else "-"
        share = f"{r.share:.1%}" if r.share is not None else "-"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        lines.append(
            f"| {r.case} | {r.system} | {r.rows:,} | {r.seconds:.2f} | {rate(r):,.0f} | "
            f"{versus_pyarrow} | {versus_loader} | {share} | {rss} | {r.what} |"
        )
    lines += [
        "",
        "share: mirrors = the reads the balancer sent to the fast copy; bursty = the "
        "consumer's time spent waiting for a batch (`iterator.waited` over the loop's time). "
        "Peak RSS growth is the measuring process's (DataLoader workers not included).",
        "",
        *(["Goals are not judged at --quick sizes."] if quick else goals(by_system, sizes)),
        "",
        environment(quick),
    ]
    return "\n".join(lines) + "\n"


def goals(by_system: dict[tuple[str, str], Result], sizes: Sizes) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = ["Goals:"]
    torch_out = by_system[("throughput", "ratchet (torch)")]
    numpy_out = by_system[("throughput", "ratchet (numpy)")]
    pyarrow = by_system[("throughput", "pyarrow loop")]
    loader = max((r for r in by_system.values() if r.system.startswith("DataLoader")), key=rate)
    ratio = rate(torch_out) / rate(loader)
    lines.append(
        f"- ratchet (torch output) vs the best DataLoader ({loader.system}): "
        f"{rate(torch_out):,.0f} vs {rate(loader):,.0f} rows/s = {ratio:.1f}x "
        f"(goal >= {GOAL_LOADER_RATIO:g}x): {verdict(ratio >= GOAL_LOADER_RATIO)}"
    )
    share = rate(numpy_out) / rate(pyarrow)
    lines.append(
        f"- ratchet (numpy output) vs the plain pyarrow loop: {rate(numpy_out):,.0f} vs "
        f"{rate(pyarrow):,.0f} rows/s = {share:.0%} (goal >= {GOAL_PYARROW_SHARE:.0%}): "
        f"{verdict(share >= GOAL_PYARROW_SHARE)}"
    )
    fast = by_system[("mirrors", "ratchet")].share or 0.0
    lines.append(
        f"- one mirror {sizes.slowdown:g}x slower: {fast:.1%} of reads went to the fast one "
        f"(goal >= {GOAL_FAST_SHARE:.0%}): {verdict(fast >= GOAL_FAST_SHARE)}"
    )
    source = by_system[("bursty", "source alone")]
    fixed = by_system[("bursty", "ratchet, depth 1")]
    adaptive = by_system[("bursty", "ratchet, AdaptivePrefetch")]
    consumer = sizes.batch / (sizes.work_ms / 1000)
    waits = (adaptive.share or 0.0, fixed.share or 0.0)
    ok = waits[0] < GOAL_WAITING <= waits[1] and rate(source) > consumer
    lines.append(
        f"- bursty source ({rate(source):,.0f} rows/s on average, the consumer's work "
        f"{consumer:,.0f} rows/s): waiting {waits[0]:.1%} with AdaptivePrefetch, "
        f"{waits[1]:.1%} at a fixed depth of 1 (goal: adaptive < {GOAL_WAITING:.0%}, "
        f"depth 1 not): {verdict(ok)}"
    )
    return lines


def environment(quick: bool) -> str:
    from importlib.metadata import version

    versions = [f"{p} {version(p)}" for p in ("ratchet", "pyarrow", "numpy", "torch", "fsspec")]
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
        quick_help="tiny sizes, goals not judged",
        configure=lambda p: p.add_argument(
            "--data", type=Path, help="the generated shards (a case alone writes its own)"
        ),
    )
    sizes = QUICK if args.quick else Sizes()
    if args.case:

        def run_case(tmp: Path) -> Result:
            data = args.data or generate(sizes, tmp / "data")
            return CASES[args.case](sizes, data)

        result = harness.in_fresh_folder(args.case, run_case)
        if args.json:
            harness.emit(asdict(result))
        else:
            print(result)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-feeder-data-") as data:
        print("writing the shards ...", file=sys.stderr, flush=True)
        results = run_all(sizes, quick=args.quick, data=generate(sizes, Path(data)))
    harness.publish(report(results, sizes, quick=args.quick), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
