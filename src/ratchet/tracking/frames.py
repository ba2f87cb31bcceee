"""pandas views of tracking records: the experiment table and a run's time series.

Owns the column layout people and notebooks see; reading the records is `tracker`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ratchet.metadata.series import SeriesBlock

RUN_COLUMNS = ["experiment_name", "run_name", "state"]


def experiment_frame(
    experiment: str, runs: Sequence[tuple[Mapping[str, object], Mapping[str, object]]]
) -> pd.DataFrame:
    """One row per run, from each run's (properties, custom properties).

    Columns: experiment_name, run_name, state, then the `param.*` and `metric.*` ones sorted.
    """
    records = []
    for declared, custom in runs:
        row: dict[str, object] = {
            "experiment_name": experiment,
            "run_name": declared.get("run_name"),
            "state": declared.get("state"),
        }
        row.update(custom)
        records.append(row)
    frame = pd.DataFrame.from_records(records, columns=None if records else RUN_COLUMNS)
    extra = sorted(c for c in frame.columns if c not in RUN_COLUMNS)
    return frame[RUN_COLUMNS + extra]


def time_series_frame(series: Mapping[str, SeriesBlock]) -> pd.DataFrame:
    """One row per step: step, wall_time (the latest of the step), one column per metric."""
    if not series:
        return pd.DataFrame(columns=["step", "wall_time"])
    long = pd.concat(
        [
            pd.DataFrame(
                {"name": name, "step": b.steps, "wall_time": b.wall_times, "value": b.values}
            )
            for name, b in series.items()
        ],
        ignore_index=True,
    )
    values = long.pivot_table(
        index="step", columns="name", values="value", aggfunc="last", dropna=False
    )
    wall = long.groupby("step")["wall_time"].max()
    frame = pd.concat([wall, values], axis=1).reset_index()
    frame.columns.name = None
    return frame
