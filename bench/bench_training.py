"""Benchmark of ratchet's training: `fit` against hand-written PyTorch loops, warmup cache, DDP.

Owns the cases, their sizes, the generated dataset and the Markdown report. Run it from
anywhere:

    python bench/bench_training.py [--quick] [--out FILE]

The parent prepares one dataset with `prepare_dataset` (200,000 rows: 7 numeric
features, two small categoricals made one-hot, one of 500 values made an embedding, a
binary label; shards of 50,000 rows) into a temporary folder, then runs each case in a
fresh interpreter (see harness.py):

- throughput: the built-in `TabularMLP` (hidden 64, 64) trained for `epochs` epochs at
  batch 256 with AdamW (lr 1e-3), from the same seeded initial weights, by
  - ratchet's `fit` (the feeder over the train shards, shuffled). `fit` also reads the
    validation split and evaluates it after every epoch and once at the end; that time
    is measured again after `fit` (the same reads and evaluations, now warm) and
    subtracted, so the figure is training time (a slight overestimate of it);
  - a hand-written loop over the same transformed train shards loaded into numpy
    arrays: a map-style `Dataset` whose `__getitem__` returns the row as a dict,
    `DataLoader(batch_size=256, shuffle=True, num_workers=0)`, default collate, the
    same model class, AdamW and loss (the goal's peer, as a user typically writes it);
  - the same loop with a `DataLoader` over pre-batched tensors (a `BatchSampler` of a
    `RandomSampler` hands `__getitem__` a batch of indices; `batch_size=None`), the best
    hand-written peer we know short of dropping the DataLoader.
  Loading the shards into arrays for the hand-written loops is not timed (it is
  reported). Each process first runs one step on a throw-away model, so torch's lazy
  imports (the first AdamW costs ~1 s) are no one's. The three run `repeats` times,
  interleaved; the median is reported.
- warmup: `warm_up` on a SQLite store and a local artifact store in the case's folder:
  the first call (a miss: trains `warmup_steps` steps, publishes, records), the second
  (a hit: one metadata query), and a third that also loads the weights from the hub.
- ddp: `run_job("module:ratchet.training.tabular")` with launcher "process" (batch 256)
  and with "torchrun", 2 processes (batch 128 per rank: the same global batch), the
  same epochs; wall time of `run_job` (start-up, training, evaluation, the bundle) and
  the in-training rate from the script's report file (between consecutive loss reports
  with no evaluation in between).

torch runs one intra-op thread per process in every case (`torch.set_num_threads(1)`;
`OMP_NUM_THREADS=1` for the jobs, which torchrun sets itself): torch's default of two on
this 2-core machine made a step of this MLP 6-20x slower (7-27 ms instead of 1.0-1.3 ms,
depending on other work on the machine). Every case checks its step and sample counts.
`--quick` uses tiny sizes and judges no goal.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
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

ENV = {"DO_NOT_TRACK": "1"}
TABULAR = "module:ratchet.training.tabular"
LABEL = "churned"
LEARNING_RATE = 1e-3
GOAL_LOADER_RATIO = 1.0
GOAL_HIT_MS = 100.0
ROW_LOADER = "DataLoader, per-row dataset"
BATCH_LOADER = "DataLoader, pre-batched tensors"
SINGLE, DOUBLE = "process, 1 process", "torchrun, 2 processes"


@dataclass(frozen=True)
class Sizes:
    rows: int = 200_000
    shard_rows: int = 50_000
    batch: int = 256
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 2
    repeats: int = 3  # runs per throughput figure, interleaved; the median is reported
    warmup_steps: int = 200
    ddp_epochs: int = 2
    report_every: int = 50


QUICK = replace(
    Sizes(),
    rows=20_000,
    shard_rows=5_000,
    epochs=1,
    repeats=1,
    warmup_steps=20,
    ddp_epochs=1,
    report_every=10,
)


@dataclass(frozen=True)
class Result:
    case: str
    system: str
    samples: int
    steps: int
    seconds: float
    rss_mb: float | None
    what: str
    validation_loss: float | None = None
    training_rate: float | None = None  # ddp: samples/s between loss reports


# ---- data -----------------------------------------------------------------------------


def generate(sizes: Sizes, folder: Path) -> Path:
    """A prepared dataset: numeric, one-hot and embedding features, a learnable binary label."""
    import pandas as pd

    from ratchet.data.engines.local import prepare_dataset

    rng = np.random.default_rng(0)
    rows = sizes.rows
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(7)})
    frame["color"] = rng.choice(["red", "green", "blue"], rows)
    frame["weekday"] = rng.choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], rows)
    city = rng.integers(0, 500, rows)
    frame["city"] = city.astype(str)
    logit = 2 * frame.x0 - frame.x1 + (frame.color == "red") * 1.5 + (city % 7 == 0) - 0.5
    frame[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    prepare_dataset(frame, folder, label=LABEL, shard_rows=sizes.shard_rows)
    return folder


@dataclass
class Problem:
    task: Any
    spec: Any
    train_rows: int

    @property
    def features(self) -> list[str]:
        return list(self.spec.features)


def load_problem(sizes: Sizes, data: Path) -> Problem:
    import pyarrow.parquet as pq

    from ratchet.data.stats import DatasetStatistics
    from ratchet.data.transform import Transform
    from ratchet.training.models import mlp_spec
    from ratchet.training.task import BINARY, detect_task

    statistics = DatasetStatistics.from_dict(
        json.loads((data / "train_statistics.json").read_text())
    )
    task = detect_task(statistics)
    harness.check("task", (task.kind, task.classes), (BINARY, ("0", "1")))
    transform = Transform.from_json((data / "transform.json").read_text())
    spec = mlp_spec(transform, task, hidden=sizes.hidden)
    train_rows = sum(
        pq.ParquetFile(p).metadata.num_rows for p in sorted((data / "train").glob("*.parquet"))
    )
    return Problem(task, spec, train_rows)


def epochs_text(epochs: int) -> str:
    return f"{epochs} epoch" + ("s" if epochs != 1 else "")


def steps_per_epoch(rows: int, batch: int) -> int:
    return -(-rows // batch)


# ---- throughput -----------------------------------------------------------------------


def start_torch(problem: Problem, data: Path) -> Any:
    """One thread; one step on a throw-away model so torch's lazy imports are behind us."""
    import torch

    from ratchet.training.loop import read_split
    from ratchet.training.models import TabularMLP, loss_function

    torch.set_num_threads(1)
    inputs, labels = read_split(data / "validation", problem.task, problem.features)
    model = TabularMLP(problem.spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    loss = loss_function(problem.task, model({k: v[:256] for k, v in inputs.items()}), labels[:256])
    loss.backward()
    optimizer.step()
    return torch


def validation_loss(model: Any, problem: Problem, data: Path) -> float:
    from ratchet.training.loop import evaluate, read_split

    found = evaluate(
        model,
        problem.task,
        *read_split(data / "validation", problem.task, problem.features),
        prefix="validation",
    )
    return found["validation_loss"]


def ratchet_fit(sizes: Sizes, data: Path) -> Result:
    from ratchet.training.loop import TrainConfig, evaluate, fit, read_split
    from ratchet.training.models import TabularMLP

    problem = load_problem(sizes, data)
    torch = start_torch(problem, data)
    torch.manual_seed(0)
    model = TabularMLP(problem.spec)
    config = TrainConfig(
        epochs=sizes.epochs, batch_size=sizes.batch, learning_rate=LEARNING_RATE, seed=0
    )
    with harness.measured() as m:
        result = fit(model, data, problem.task, config=config)
    harness.check("epochs", result.epochs, sizes.epochs)
    steps = sizes.epochs * steps_per_epoch(problem.train_rows, sizes.batch)
    harness.check("steps", result.steps, steps)
    # fit's own validation work, done again: one read, an evaluation per epoch, a final one.
    evaluations = len(result.history) + 1
    started = time.perf_counter()
    validation = read_split(data / "validation", problem.task, problem.features)
    for _ in range(evaluations):
        evaluate(model, problem.task, *validation, prefix="validation")
    evaluating = time.perf_counter() - started
    what = (
        f"`fit` (feeder, shuffled), {epochs_text(sizes.epochs)}: {m.seconds:.2f} s in all minus "
        f"{evaluating:.2f} s of validation (1 read + {evaluations} evaluations, re-timed)"
    )
    return Result(
        "throughput",
        "ratchet fit",
        problem.train_rows * sizes.epochs,
        result.steps,
        m.seconds - evaluating,
        m.rss_mb,
        what,
        result.metrics["validation_loss"],
    )


def _hand_written(sizes: Sizes, data: Path, *, pre_batched: bool) -> Result:
    import pyarrow.parquet as pq
    from torch.nn import functional as F
    from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

    from ratchet.training.models import TabularMLP

    problem = load_problem(sizes, data)
    torch = start_torch(problem, data)
    started = time.perf_counter()
    table = pq.read_table(data / "train", columns=[*problem.features, LABEL])
    arrays = {}
    for name in table.column_names:
        array = table[name].to_numpy()
        arrays[name] = array.astype(np.float32) if array.dtype.kind == "f" else array
    loaded = time.perf_counter() - started
    harness.check("rows loaded", len(arrays[LABEL]), problem.train_rows)

    class Rows(Dataset[dict[str, Any]]):
        def __len__(self) -> int:
            return len(arrays[LABEL])

        def __getitem__(self, index: int) -> dict[str, Any]:
            return {name: array[index] for name, array in arrays.items()}

    class Batches(Dataset[dict[str, Any]]):
        def __init__(self) -> None:
            self.tensors = {name: torch.from_numpy(array) for name, array in arrays.items()}

        def __len__(self) -> int:
            return len(arrays[LABEL])

        def __getitem__(self, indices: list[int]) -> dict[str, Any]:
            return {name: tensor[indices] for name, tensor in self.tensors.items()}

    torch.manual_seed(0)
    model = TabularMLP(problem.spec)
    samples = steps = 0
    with harness.measured() as m:
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
        if pre_batched:
            batches = Batches()
            sampler = BatchSampler(RandomSampler(batches), sizes.batch, drop_last=False)
            loader = DataLoader(batches, sampler=sampler, batch_size=None)
        else:
            loader = DataLoader(Rows(), batch_size=sizes.batch, shuffle=True, num_workers=0)
        for _ in range(sizes.epochs):
            for batch in loader:
                outputs = model(batch)
                loss = F.binary_cross_entropy_with_logits(outputs[:, 0], batch[LABEL].float())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                steps += 1
                samples += len(batch[LABEL])
    harness.check("samples", samples, problem.train_rows * sizes.epochs)
    harness.check("steps", steps, sizes.epochs * steps_per_epoch(problem.train_rows, sizes.batch))
    how = (
        "BatchSampler(RandomSampler) of indices, tensors indexed per batch"
        if pre_batched
        else "map-style dataset of rows as dicts, default collate, shuffle"
    )
    what = f"{how}, {epochs_text(sizes.epochs)}; shards loaded in {loaded:.2f} s, not timed"
    system = BATCH_LOADER if pre_batched else ROW_LOADER
    loss_after = validation_loss(model, problem, data)
    return Result("throughput", system, samples, steps, m.seconds, m.rss_mb, what, loss_after)


def row_loader(sizes: Sizes, data: Path) -> Result:
    return _hand_written(sizes, data, pre_batched=False)


def batch_loader(sizes: Sizes, data: Path) -> Result:
    return _hand_written(sizes, data, pre_batched=True)


# ---- warmup ---------------------------------------------------------------------------


def warmup(sizes: Sizes, data: Path) -> list[Result]:
    from ratchet.artifacts import ArtifactStore
    from ratchet.metadata import MetadataStore
    from ratchet.training.hub import Hub
    from ratchet.training.models import TabularMLP
    from ratchet.training.warmup import WarmupConfig, warm_up

    problem = load_problem(sizes, data)
    start_torch(problem, data)
    here = Path.cwd()  # the case's fresh folder
    version = hashlib.sha256((data / "train_statistics.json").read_bytes()).hexdigest()
    config = WarmupConfig(
        steps=sizes.warmup_steps, learning_rate=LEARNING_RATE, batch_size=sizes.batch
    )
    with MetadataStore(f"sqlite:///{here / 'metadata.db'}") as store:
        hub = Hub(store, ArtifactStore(str(here / "artifacts")))

        def call() -> Any:
            return warm_up(
                hub, problem.spec, data, problem.task, dataset_version=version, config=config
            )

        with harness.measured() as miss_m:
            miss = call()
        with harness.measured() as hit_m:
            hit = call()
        with harness.measured() as load_m:
            again = call()
            state, loaded = hub.load(again.weights)
    harness.check("first call cached", miss.cached, False)
    harness.check("second call cached", (hit.cached, hit.weights), (True, miss.weights))
    harness.check("third call cached", (again.cached, loaded), (True, miss.weights))
    harness.check("weights loaded", sorted(state), sorted(TabularMLP(problem.spec).state_dict()))
    store_note = "SQLite metadata store and local artifact store in a fresh folder"
    samples = sizes.warmup_steps * sizes.batch
    return [
        Result(
            "warmup",
            "ratchet, miss",
            samples,
            sizes.warmup_steps,
            miss_m.seconds,
            miss_m.rss_mb,
            f"first call: {sizes.warmup_steps} steps trained, published, recorded; {store_note}",
        ),
        Result(
            "warmup",
            "ratchet, hit",
            0,
            0,
            hit_m.seconds,
            hit_m.rss_mb,
            "second call, same key: a WeightsRef from one metadata query, no training",
        ),
        Result(
            "warmup",
            "ratchet, hit + load",
            0,
            0,
            load_m.seconds,
            load_m.rss_mb,
            "third call, then `hub.load` (the state dict, sha256 verified)",
        ),
    ]


# ---- ddp ------------------------------------------------------------------------------


def training_rate(reports: Path, global_batch: int) -> float | None:
    """Samples/s between consecutive loss reports with no evaluation report in between."""
    if not reports.exists():
        return None
    items = [json.loads(line) for line in reports.read_text().splitlines() if line.strip()]
    points = [i for i in items if "metrics" in i and "time" in i]
    steps = seconds = 0.0
    for before, after in itertools.pairwise(points):
        if "loss" in before["metrics"] and "loss" in after["metrics"]:
            steps += after["step"] - before["step"]
            seconds += after["time"] - before["time"]
    return steps * global_batch / seconds if seconds > 0 else None


def ddp(sizes: Sizes, data: Path) -> list[Result]:
    from ratchet.training.contract import TrainingContext
    from ratchet.training.jobs import run_job

    problem = load_problem(sizes, data)
    os.environ["OMP_NUM_THREADS"] = "1"  # what torchrun sets for each of its workers
    common = {
        "hidden": list(sizes.hidden),
        "epochs": sizes.ddp_epochs,
        "learning_rate": LEARNING_RATE,
        "seed": 0,
        "patience": 10_000,  # no early stop: every run takes every epoch
        "report_every": sizes.report_every,
    }
    results = []
    for launcher, processes in (("process", 1), ("torchrun", 2)):
        batch = sizes.batch // processes
        model_dir = Path.cwd() / launcher
        context = TrainingContext(model_dir=model_dir, dataset=str(data))
        with harness.measured() as m:
            job = run_job(
                TABULAR,
                {**common, "batch_size": batch},
                context=context,
                launcher=launcher,
                nproc=processes,
            )
        if job.state != "COMPLETE":
            raise RuntimeError(f"{launcher} job {job.state}:\n{job.logs.read_text()[-4000:]}")
        if processes == 1:
            per_epoch = steps_per_epoch(problem.train_rows, batch)
            samples = problem.train_rows * sizes.ddp_epochs
        else:  # every rank takes the same number of full batches of its share
            per_epoch = problem.train_rows // processes // batch
            samples = per_epoch * batch * processes * sizes.ddp_epochs
        steps = max(int(r["step"]) for r in job.reports)
        harness.check(f"{launcher} steps", steps, per_epoch * sizes.ddp_epochs)
        rate = training_rate(model_dir.with_name(launcher + ".reports.jsonl"), sizes.batch)
        what = (
            f"run_job({TABULAR}), {epochs_text(sizes.ddp_epochs)}, "
            + (f"{processes} processes x batch {batch}" if processes > 1 else f"batch {batch}")
            + "; wall time: start-up, training, evaluations, test split, bundle"
        )
        system = DOUBLE if processes > 1 else SINGLE
        loss = job.metrics.get("validation_loss")
        results.append(Result("ddp", system, samples, steps, m.seconds, None, what, loss, rate))
    return results


CASES: dict[str, Callable[[Sizes, Path], Result | list[Result]]] = {
    "ratchet-fit": ratchet_fit,
    "row-loader": row_loader,
    "batch-loader": batch_loader,
    "warmup": warmup,
    "ddp": ddp,
}
REPEATED = ("ratchet-fit", "row-loader", "batch-loader")


# ---- running and reporting ------------------------------------------------------------


def run_all(sizes: Sizes, *, quick: bool, data: Path) -> list[Result]:
    def spawn(name: str) -> list[Result]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        found = harness.spawn(
            __file__,
            name,
            quick=quick,
            env=ENV,
            clear_prefixes=("RATCHET_",),
            extra=["--data", str(data)],
        )
        return [Result(**item) for item in (found if isinstance(found, list) else [found])]

    runs: dict[str, list[Result]] = {name: [] for name in REPEATED}
    for _ in range(sizes.repeats):  # interleaved, so a busy moment hits every system alike
        for name in REPEATED:
            runs[name] += spawn(name)
    results = [median_of(found) for found in runs.values()]
    for name in CASES:
        if name not in REPEATED:
            results += spawn(name)
    return results


def median_of(results: list[Result]) -> Result:
    seconds = sorted(r.seconds for r in results)
    middle = statistics.median(seconds)
    picked = min(results, key=lambda r: abs(r.seconds - middle))
    if len(results) == 1:
        return picked
    rates = [f"{picked.samples / s:,.0f}" for s in seconds]
    what = f"{picked.what}; median of {len(results)} runs ({' / '.join(rates)} samples/s)"
    return replace(picked, seconds=middle, what=what)


def rate(result: Result) -> float:
    return result.samples / result.seconds


def report(results: list[Result], *, quick: bool) -> str:
    """The Markdown table, the goals and the environment."""
    by_system = {(r.case, r.system): r for r in results}
    lines = [
        "| case | system | samples | steps | seconds | samples/s | ratio | validation loss | "
        "peak RSS growth MB | what |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = "-"
        if r.case == "throughput" and ("throughput", ROW_LOADER) in by_system:
            ratio = f"{rate(r) / rate(by_system[('throughput', ROW_LOADER)]):.2f}x"
        elif r.case == "warmup" and ("warmup", "ratchet, miss") in by_system:
            ratio = f"{r.seconds / by_system[('warmup', 'ratchet, miss')].seconds:.3f}x"
        elif r.case == "ddp" and ("ddp", SINGLE) in by_system:
            ratio = f"{rate(r) / rate(by_system[('ddp', SINGLE)]):.2f}x"
        per_second = f"{rate(r):,.0f}" if r.samples else "-"
        loss = f"{r.validation_loss:.4f}" if r.validation_loss is not None else "-"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        seconds = f"{r.seconds:.4g}"
        lines.append(
            f"| {r.case} | {r.system} | {r.samples:,} | {r.steps:,} | {seconds} | {per_second} | "
            f"{ratio} | {loss} | {rss} | {r.what} |"
        )
    lines += [
        "",
        "ratio: throughput = samples/s over the per-row DataLoader loop's; warmup = time over "
        "the miss's; ddp = wall samples/s over one process's. seconds: throughput = training "
        "only; warmup = the call; ddp = `run_job`'s wall time. Peak RSS growth is the "
        "measuring process's over the timed block (the hand-written loops' arrays are loaded "
        "before it).",
        "",
        *(["Goals are not judged at --quick sizes."] if quick else goals(by_system)),
        *scaling(by_system),
        "",
        environment(quick),
    ]
    return "\n".join(lines) + "\n"


def goals(by_system: dict[tuple[str, str], Result]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    ratchet = by_system[("throughput", "ratchet fit")]
    rows = by_system[("throughput", ROW_LOADER)]
    batches = by_system[("throughput", BATCH_LOADER)]
    ratio = rate(ratchet) / rate(rows)
    hit = by_system[("warmup", "ratchet, hit")].seconds * 1000
    miss = by_system[("warmup", "ratchet, miss")].seconds
    return [
        "Goals:",
        f"- ratchet `fit` vs the hand-written loop ({ROW_LOADER}): {rate(ratchet):,.0f} vs "
        f"{rate(rows):,.0f} samples/s = {ratio:.2f}x (goal >= {GOAL_LOADER_RATIO:g}x): "
        f"{verdict(ratio >= GOAL_LOADER_RATIO)}",
        f"- (no goal) ratchet `fit` vs the hand-written loop ({BATCH_LOADER}): "
        f"{rate(ratchet):,.0f} vs {rate(batches):,.0f} samples/s = "
        f"{rate(ratchet) / rate(batches):.2f}x",
        f"- warmup cache hit: {hit:.1f} ms (the miss: {miss:.2f} s) (goal < {GOAL_HIT_MS:g} ms): "
        f"{verdict(hit < GOAL_HIT_MS)}",
    ]


def scaling(by_system: dict[tuple[str, str], Result]) -> list[str]:
    single, double = by_system.get(("ddp", SINGLE)), by_system.get(("ddp", DOUBLE))
    if single is None or double is None:
        return []

    def steady(r: Result) -> str:
        return f"{r.training_rate:,.0f}" if r.training_rate else "-"

    inside = (
        f"{double.training_rate / single.training_rate:.2f}x"
        if double.training_rate and single.training_rate
        else "-"
    )
    return [
        f"- DDP scaling (reported, no goal), 2 processes vs 1 at the same global batch: wall "
        f"{double.seconds:.1f} s vs {single.seconds:.1f} s, {rate(double):,.0f} vs "
        f"{rate(single):,.0f} samples/s = {rate(double) / rate(single):.2f}x; in training "
        f"(between loss reports) {steady(double)} vs {steady(single)} samples/s = {inside}",
    ]


def environment(quick: bool) -> str:
    from importlib.metadata import version

    import torch

    versions = [f"{p} {version(p)}" for p in ("ratchet", "pyarrow", "numpy", "torch")]
    cpu = harness.cpu()
    return (
        f"Python {platform.python_version()}, {', '.join(versions)}; {cpu}, "
        f"{os.cpu_count()} CPUs (torch default {torch.get_num_threads()} threads; 1 here)"
        + ("; --quick sizes" if quick else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_arguments(
        __doc__.splitlines()[0],
        CASES,
        argv,
        quick_help="tiny sizes, goals not judged",
        configure=lambda p: p.add_argument(
            "--data", type=Path, help="the prepared dataset (a case alone prepares its own)"
        ),
    )
    sizes = QUICK if args.quick else Sizes()
    if args.case:

        def run_case(tmp: Path) -> Result | list[Result]:
            data = args.data or generate(sizes, tmp / "data")
            return CASES[args.case](sizes, data)

        result = harness.in_fresh_folder(args.case, run_case)
        found = [asdict(r) for r in result] if isinstance(result, list) else asdict(result)
        if args.json:
            harness.emit(found)
        else:
            print(found)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-training-data-") as data:
        print("preparing the dataset ...", file=sys.stderr, flush=True)
        results = run_all(sizes, quick=args.quick, data=generate(sizes, Path(data) / "v1"))
    harness.publish(report(results, quick=args.quick), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
