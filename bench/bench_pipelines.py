"""Benchmark of ratchet's pipeline runner against kfp.local (SubprocessRunner, no venv).

Owns the cases, their sizes and the Markdown report. Run it from anywhere:

    python bench/bench_pipelines.py [--quick] [--out FILE]

Cases, each in a fresh subprocess (`--case NAME --json`) with its own temporary
RATCHET_HOME or kfp.local pipeline root and working folder:

- overhead: a chain of N trivial tasks (`add_one(a)` after `add_one(a)`), caching off, at
  N=1 and N=large; the overhead per task is (T(N) - T(1)) / (N - 1), so start-up costs
  (compiling, the metadata store, worker processes) cancel out. kfp.local gets a smaller N:
  it starts a fresh interpreter (and a `pip install` check) for every task.
- cached: a ParallelFor of 100 trivial tasks run by ratchet twice in one home; the second
  run is answered from the cache. kfp.local is not timed here (its first run alone is ~1 min).
- diamond: a -> (b, c) -> d, where b and c each sleep 1 s; ratchet runs b and c at once.

Every timed run is checked (state, outputs, cache hits). Each process runs one untimed
warm-up pipeline first, so imports are not counted; ratchet timings are the median of
`repeats` runs, kfp.local's a single run. `--quick` uses tiny sizes and skips kfp.local
(the smoke test in tests/test_bench_smoke.py runs it).
"""

# No `from __future__ import annotations`: kfp reads the annotations of the components.
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import harness
from kfp import dsl

ENV = {"DO_NOT_TRACK": "1"}


@dataclass(frozen=True)
class Sizes:
    chain: int = 40
    kfp_chain: int = 10
    fan_out: int = 100
    nap_seconds: float = 1.0
    repeats: int = 3  # ratchet runs per timing; the median is reported


QUICK = replace(Sizes(), chain=3, kfp_chain=3, fan_out=5, nap_seconds=0.2, repeats=1)


@dataclass(frozen=True)
class Row:
    case: str
    system: str
    tasks: int
    seconds: float
    note: str = ""


# ---- the pipelines --------------------------------------------------------------------


@dsl.component(base_image="python:3.11")
def add_one(a: int) -> int:
    return a + 1


@dsl.component(base_image="python:3.11")
def nap(a: int, seconds: float, branch: str) -> int:
    import time

    time.sleep(seconds)
    return a


@dsl.component(base_image="python:3.11")
def add(x: int, y: int) -> int:
    return x + y


def chain_pipeline(n: int) -> Any:
    @dsl.pipeline(name=f"chain-{n}")
    def chain(start: int = 0) -> int:
        task = add_one(a=start)
        for _ in range(n - 1):
            task = add_one(a=task.output)
        return task.output

    return chain


@dsl.pipeline(name="fan-out")
def fan_out_pipeline(items: list[int]) -> None:
    with dsl.ParallelFor(items) as item:
        add_one(a=item)


@dsl.pipeline(name="diamond")
def diamond_pipeline(seconds: float = 1.0) -> int:
    a = add_one(a=0)
    b = nap(a=a.output, seconds=seconds, branch="b")
    c = nap(a=a.output, seconds=seconds, branch="c")
    return add(x=b.output, y=c.output).output


# ---- running them ---------------------------------------------------------------------


def _timed(runs: int, once: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Ratchet:
    name = "ratchet"

    def __init__(self, tmp: Path) -> None:
        from ratchet.config import load_config

        self.config = load_config(home=tmp / "home")

    def run(self, pipeline: Any, arguments: dict[str, Any], *, cache: bool = False) -> Any:
        from ratchet import pipelines

        run = pipelines.run(pipeline, arguments, config=self.config, enable_caching=cache)
        harness.check(f"state of {pipeline.name}", run.state, "SUCCEEDED")
        return run

    def output(self, pipeline: Any, arguments: dict[str, Any]) -> Any:
        return self.run(pipeline, arguments).outputs.get("Output")


class KfpLocal:
    name = "kfp.local"

    def __init__(self, tmp: Path) -> None:
        from kfp import local

        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(tmp / "kfp-root"),
            raise_on_error=True,
        )

    def output(self, pipeline: Any, arguments: dict[str, Any]) -> Any:
        outputs = pipeline(**arguments).outputs
        return outputs.get("Output")


System = Ratchet | KfpLocal


def _system(name: str, tmp: Path) -> System:
    system: System = Ratchet(tmp) if name == "ratchet" else KfpLocal(tmp)
    harness.check("warm-up output", system.output(chain_pipeline(1), {}), 1)
    return system


def overhead(system_name: str, sizes: Sizes, tmp: Path) -> list[Row]:
    system = _system(system_name, tmp)
    n = sizes.chain if system_name == "ratchet" else sizes.kfp_chain
    runs = sizes.repeats if system_name == "ratchet" else 1
    rows = []
    for tasks in (1, n):
        pipeline = chain_pipeline(tasks)

        def once(pipeline: Any = pipeline, tasks: int = tasks) -> None:
            harness.check(f"chain of {tasks}", system.output(pipeline, {}), tasks)

        rows.append(Row("overhead", system.name, tasks, _timed(runs, once), "chain, no cache"))
    return rows


def cached(system_name: str, sizes: Sizes, tmp: Path) -> list[Row]:
    ratchet = _system(system_name, tmp)
    if not isinstance(ratchet, Ratchet):
        raise ValueError("the cached case runs ratchet only")
    from ratchet.pipelines import TaskState

    arguments = {"items": list(range(sizes.fan_out))}
    started = time.perf_counter()
    first = ratchet.run(fan_out_pipeline, arguments, cache=True)
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    second = ratchet.run(fan_out_pipeline, arguments, cache=True)
    second_seconds = time.perf_counter() - started
    leaves = [p for p in second.tasks if p.endswith("/add-one")]
    harness.check("tasks", len(leaves), sizes.fan_out)
    harness.check("first run", {first.tasks[p] for p in leaves}, {TaskState.COMPLETE})
    harness.check("second run", {second.tasks[p] for p in leaves}, {TaskState.CACHED})
    return [
        Row("cached", "ratchet", sizes.fan_out, first_seconds, "ParallelFor, first run"),
        Row("cached", "ratchet", sizes.fan_out, second_seconds, "same, re-run: all cached"),
    ]


def diamond(system_name: str, sizes: Sizes, tmp: Path) -> list[Row]:
    system = _system(system_name, tmp)
    runs = sizes.repeats if system_name == "ratchet" else 1
    arguments = {"seconds": sizes.nap_seconds}

    def once() -> None:
        harness.check("diamond", system.output(diamond_pipeline, arguments), 2)

    note = f"a -> (b, c) -> d; b, c sleep {sizes.nap_seconds:g} s"
    return [Row("diamond", system.name, 4, _timed(runs, once), note)]


CASES: dict[str, tuple[Callable[[str, Sizes, Path], list[Row]], str]] = {
    "overhead-ratchet": (overhead, "ratchet"),
    "overhead-kfp": (overhead, "kfp.local"),
    "cached-ratchet": (cached, "ratchet"),
    "diamond-ratchet": (diamond, "ratchet"),
    "diamond-kfp": (diamond, "kfp.local"),
}
GOAL_OVERHEAD_MS = 20.0
GOAL_OVERHEAD_RATIO = 25.0
GOAL_CACHED_SECONDS = 1.0
GOAL_DIAMOND_SECONDS = 1.5  # "~1 s": b and c overlap


def run_case(name: str, quick: bool) -> list[Row]:
    sizes = QUICK if quick else Sizes()
    function, system = CASES[name]
    return harness.in_fresh_folder(name, lambda tmp: function(system, sizes, tmp))


def spawn_case(name: str, quick: bool) -> list[Row]:
    """Run one case in a fresh interpreter and read back its rows."""
    rows = harness.spawn(__file__, name, quick=quick, env=ENV, clear_prefixes=("RATCHET_",))
    return [Row(**row) for row in rows]


# ---- report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """What the goals are judged on, from the rows."""

    per_task_ms: dict[str, float]  # by system: (T(N) - T(1)) / (N - 1)
    diamond: dict[str, float]  # by system: wall seconds
    cached: tuple[float, float] | None  # ratchet's first and cached run, seconds


def figures(rows: list[Row]) -> Figures:
    per_task = {}
    for system in ("ratchet", "kfp.local"):
        mine = [r for r in rows if r.case == "overhead" and r.system == system]
        chain = sorted(mine, key=lambda r: r.tasks)
        if len(chain) == 2 and chain[1].tasks > 1:
            one, many = chain
            per_task[system] = (many.seconds - one.seconds) / (many.tasks - 1) * 1000
    diamond = {r.system: r.seconds for r in rows if r.case == "diamond"}
    cached_rows = [r.seconds for r in rows if r.case == "cached"]
    cached = (cached_rows[0], cached_rows[1]) if len(cached_rows) == 2 else None
    return Figures(per_task, diamond, cached)


def report(rows: list[Row], quick: bool) -> str:
    """The Markdown table, the goals and the environment."""
    found = figures(rows)
    lines = [
        "| case | system | tasks | seconds | per-task ms | ratio | what |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        per_task, ratio = "-", "-"
        if row.case == "overhead" and row.tasks > 1:
            per_task = f"{found.per_task_ms[row.system]:.1f}"
            ratio = _ratio(found.per_task_ms, row.system)
        elif row.case == "cached":
            per_task = f"{row.seconds / row.tasks * 1000:.1f}"
        elif row.case == "diamond":
            ratio = _ratio(found.diamond, row.system)
        lines.append(
            f"| {row.case} | {row.system} | {row.tasks} | {row.seconds:.3f} | {per_task} | "
            f"{ratio} | {row.note} |"
        )
    lines += [
        "",
        "overhead per task = (T(N) - T(1)) / (N - 1) over the two chain rows of a system; "
        "ratio = kfp.local's figure over ratchet's (per-task overhead, diamond wall time).",
        "",
        *(["Goals are not judged at --quick sizes."] if quick else _goals(found)),
        "",
        _environment(quick),
    ]
    return "\n".join(lines) + "\n"


def _ratio(by_system: dict[str, float], system: str) -> str:
    if system == "kfp.local":
        return "ref"
    if "kfp.local" not in by_system or by_system.get(system, 0) <= 0:
        return "-"
    return f"{by_system['kfp.local'] / by_system[system]:,.1f}x"


def _goals(found: Figures) -> list[str]:
    goals = []
    ours, theirs = found.per_task_ms.get("ratchet"), found.per_task_ms.get("kfp.local")
    if ours is not None:
        ratio = theirs / ours if theirs is not None and ours > 0 else None
        ok = ours <= GOAL_OVERHEAD_MS and (ratio is None or ratio >= GOAL_OVERHEAD_RATIO)
        versus = f", {ratio:.1f}x faster than kfp.local ({theirs:.0f} ms)" if ratio else ""
        goals.append(
            f"- overhead per trivial task: {ours:.1f} ms{versus} (goal <= {GOAL_OVERHEAD_MS:g} "
            f"ms and >= {GOAL_OVERHEAD_RATIO:g}x): {'met' if ok else 'NOT met'}"
        )
    if found.cached is not None:
        first, second = found.cached
        ok = second < GOAL_CACHED_SECONDS
        goals.append(
            f"- fully cached re-run: {second:.2f} s (first run {first:.2f} s; "
            f"goal < {GOAL_CACHED_SECONDS:g} s): {'met' if ok else 'NOT met'}"
        )
    if "ratchet" in found.diamond:
        wall = found.diamond["ratchet"]
        theirs_wall = found.diamond.get("kfp.local")
        versus = f", kfp.local {theirs_wall:.2f} s" if theirs_wall is not None else ""
        ok = wall < GOAL_DIAMOND_SECONDS
        goals.append(
            f"- diamond with two parallel sleeps: {wall:.2f} s{versus} "
            f"(goal ~1 s, counted met below {GOAL_DIAMOND_SECONDS:g} s): "
            f"{'met' if ok else 'NOT met'}"
        )
    return ["Goals:", *goals]


def _environment(quick: bool) -> str:
    from importlib.metadata import version

    versions = [f"{p} {version(p)}" for p in ("ratchet", "kfp")]
    cpu = harness.cpu()
    return (
        f"Python {platform.python_version()}, {', '.join(versions)}; {cpu}, "
        f"{os.cpu_count()} CPUs" + ("; --quick sizes, ratchet only" if quick else "")
    )


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_arguments(
        __doc__.splitlines()[0], CASES, argv, quick_help="tiny sizes, ratchet only"
    )
    if args.case:
        os.environ.update(ENV)
        rows = run_case(args.case, args.quick)
        if args.json:
            harness.emit([asdict(r) for r in rows])
        else:
            print(rows)
        return 0
    rows = []
    for name, (_, system) in CASES.items():
        if args.quick and system != "ratchet":
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += spawn_case(name, args.quick)
    text = report(rows, args.quick)
    harness.publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
