"""`ratchet data stats|schema|validate|drift|prepare|versions`: the data pipeline from the shell.

Owns reading a SOURCE argument into statistics (quarantine reported on stderr),
the parsing of `--threshold`, and the rendering of statistics, anomalies and
drift. The computations are `ratchet.data`'s; recording results in the stores
is `ratchet.datasets`'.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from ratchet import datasets
from ratchet.artifacts import ArtifactStore
from ratchet.cli.context import existing_store
from ratchet.cli.output import console, emit, error_console, print_json, print_table
from ratchet.config import Config
from ratchet.data.drift import DEFAULT_THRESHOLDS, compare
from ratchet.data.engines.local import prepare_dataset
from ratchet.data.io import open_source
from ratchet.data.schema import Schema, infer_schema, validate
from ratchet.data.stats import DatasetStatistics, FeatureStatistics, compute_statistics
from ratchet.errors import InvalidArgument
from ratchet.metadata import Artifact, MetadataStore

app = typer.Typer(
    help="Statistics, schema, validation and drift of data files.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SourceArgument = Annotated[str, typer.Argument(help="CSV or Parquet file, folder or glob.")]
LabelOption = Annotated[str | None, typer.Option("--label", help="The label column.")]
TOP_SHOWN = 3


def read_statistics(
    config: Config, source: str, *, label: str | None = None
) -> tuple[DatasetStatistics, int]:
    """Statistics of a data source and its number of quarantined rows (reported on stderr)."""
    opened = open_source(source, errors_path=config.home / "quarantine")
    stats = compute_statistics(opened.batches(), label=label)
    quarantine = opened.quarantine
    if quarantine.count:
        error_console().print(
            f"warning: {quarantine.count} malformed rows of {source} quarantined to "
            f"{quarantine.path}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return stats, quarantine.count


def _record_source(
    config: Config, store: MetadataStore, source: str, *, label: str | None = None
) -> tuple[Artifact, DatasetStatistics]:
    stats, quarantined = read_statistics(config, source, label=label)
    artifact = datasets.record_statistics(
        store,
        ArtifactStore.from_config(config),
        stats,
        source=os.path.abspath(source),
        quarantined=quarantined,
    )
    return artifact, stats


def _feature_row(feature: FeatureStatistics) -> dict[str, Any]:
    numeric, categorical = feature.numeric, feature.categorical
    row: dict[str, Any] = {
        "name": feature.name,
        "type": feature.type,
        "count": feature.count,
        "missing": feature.missing,
    }
    if numeric is not None:
        row.update(min=numeric.min, max=numeric.max, mean=numeric.mean, std=numeric.std)
    if categorical is not None:
        row["distinct"] = categorical.distinct
        row["top values"] = ", ".join(f"{v} ({c})" for v, c in categorical.top[:TOP_SHOWN])
    return row


@app.command("stats")
def stats_command(
    ctx: typer.Context,
    source: SourceArgument,
    label: LabelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per-feature statistics of a data source, recorded as a DatasetStatistics artifact."""
    config: Config = ctx.obj
    with MetadataStore.from_config(config) as store:
        artifact, stats = _record_source(config, store, source, label=label)
    if as_json:
        print_json({**stats.to_dict(), "artifact_id": artifact.id})
        return
    columns = ("name", "type", "count", "missing", "min", "max", "mean", "std", "distinct")
    print_table(
        [_feature_row(f) for f in stats.features],
        title=f"{source}: {stats.rows} rows" + (f", label {stats.label}" if stats.label else ""),
        columns=(*columns, "top values"),
    )
    console().print(f"recorded as DatasetStatistics artifact {artifact.id}")


@app.command("schema")
def schema_command(
    ctx: typer.Context,
    source: SourceArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="YAML file to write.")],
    label: LabelOption = None,
) -> None:
    """Infer a schema from a data source and write it as editable YAML."""
    stats, _ = read_statistics(ctx.obj, source, label=label)
    schema = infer_schema(stats)
    schema.save(output)
    console().print(
        f"wrote {output}: {len(schema.features)} features, version {schema.version[:12]}"
    )


@app.command("validate")
def validate_command(
    ctx: typer.Context,
    source: SourceArgument,
    schema_path: Annotated[Path, typer.Option("--schema", help="Schema YAML file.")],
    as_json: JsonOption = False,
) -> None:
    """Anomalies of a data source against a schema; exit code 1 when there are any."""
    schema = Schema.load(schema_path)
    stats, _ = read_statistics(ctx.obj, source)
    anomalies = validate(stats, schema)
    if as_json:
        print_json(
            {
                "schema_version": schema.version,
                "valid": not anomalies,
                "anomalies": [asdict(a) for a in anomalies],
            }
        )
    elif anomalies:
        rows = [
            {"feature": a.feature, "kind": a.kind, "description": a.description} for a in anomalies
        ]
        print_table(rows, title=f"anomalies of {source}")
    else:
        console().print(f"{source} conforms to schema {schema.version[:12]}")
    if anomalies:
        error_console().print(
            f"{len(anomalies)} anomalies against {schema_path}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


def parse_thresholds(values: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """NAME=VALUE pairs split into per-feature and per-metric thresholds."""
    features: dict[str, float] = {}
    metrics: dict[str, float] = {}
    for text in values:
        name, sep, value = text.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or not name or not number >= 0:
            raise InvalidArgument(
                f"--threshold {text!r} is malformed: use NAME=VALUE with a number >= 0"
            )
        (metrics if name in DEFAULT_THRESHOLDS else features)[name] = number
    return features, metrics


def _resolve(config: Config, store: MetadataStore, ref: str) -> tuple[Artifact, DatasetStatistics]:
    """A data file's statistics, recorded now, or those of a recorded artifact given by id."""
    if ref.isdigit() and not Path(ref).exists():
        return datasets.load_statistics(store, ArtifactStore.from_config(config), int(ref))
    return _record_source(config, store, ref)


@app.command("drift")
def drift_command(
    ctx: typer.Context,
    baseline: Annotated[str, typer.Argument(help="Data file or DatasetStatistics artifact id.")],
    current: Annotated[str, typer.Argument(help="Data file or DatasetStatistics artifact id.")],
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold", help="FEATURE=VALUE or METRIC=VALUE (l_infinity, jensen_shannon)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Drift of CURRENT against BASELINE per feature; recorded as a DriftReport artifact."""
    config: Config = ctx.obj
    per_feature, per_metric = parse_thresholds(threshold or [])
    with MetadataStore.from_config(config) as store:
        old_artifact, old = _resolve(config, store, baseline)
        new_artifact, new = _resolve(config, store, current)
        known = {f.name for f in old.features} | {f.name for f in new.features}
        if unknown := sorted(per_feature.keys() - known):
            raise InvalidArgument(f"--threshold names no feature of the data: {unknown[0]!r}")
        report = compare(old, new, thresholds=per_feature, metric_thresholds=per_metric)
        recorded = datasets.record_drift(
            store,
            ArtifactStore.from_config(config),
            report,
            baseline=old_artifact,
            current=new_artifact,
        )
    note = f"recorded as DriftReport artifact {recorded.id}"
    if as_json:
        print_json(report.to_dict())
        error_console().print(note, markup=False, highlight=False)
        return
    rows = [{**asdict(f), "drifted": "DRIFTED" if f.drifted else ""} for f in report.features]
    verdict = "drifted" if report.drifted else "no drift"
    print_table(rows, title=f"{current} against {baseline}: {verdict}")
    console().print(note)


@app.command("prepare")
def prepare_command(
    ctx: typer.Context,
    source: SourceArgument,
    label: Annotated[str, typer.Option("--label", help="The label column.")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: file stem).")] = None,
    key: Annotated[str | None, typer.Option(help="Split on this column's value.")] = None,
    shard_rows: Annotated[int, typer.Option(help="Rows per Parquet shard.")] = 250_000,
    error_budget: Annotated[
        float | None, typer.Option(help="Malformed rows allowed: a fraction < 1 or a count.")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="local (Arrow/DuckDB, in process) or beam (Apache Beam).")
    ] = "local",
    runner: Annotated[
        str, typer.Option(help="Beam runner: DirectRunner, DataflowRunner, FlinkRunner, ...")
    ] = "DirectRunner",
    pipeline_option: Annotated[
        list[str] | None,
        typer.Option(help="A Beam pipeline option, e.g. --pipeline-option=--project=p (repeat)."),
    ] = None,
) -> None:
    """Split, describe, fit the transform and export a source as a new dataset version."""
    config: Config = ctx.obj
    if engine not in ("local", "beam"):
        raise InvalidArgument(f"--engine must be local or beam, got {engine!r}")
    dataset_name = name or Path(source.rstrip("/*")).stem or "dataset"
    budget: float | int | None = error_budget
    if error_budget is not None and error_budget >= 1:
        budget = int(error_budget)
    root = config.home / "datasets" / dataset_name
    staging = root / f".staging-{os.getpid()}"
    started = time.time()
    with Progress(
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        console=console(),
    ) as progress:
        phases = {
            phase: progress.add_task(f"{phase} {source}", total=None)
            for phase in ("describe", "export")
        }
        if engine == "beam":
            from ratchet.data.engines import beam

            # Beam's workers report no per-batch progress: the bar shows the time.
            prepared = beam.prepare_dataset(
                source,
                staging,
                label=label,
                key=key,
                shard_rows=shard_rows,
                error_budget=budget,
                runner=runner,
                options=pipeline_option,
            )
        else:
            prepared = prepare_dataset(
                source,
                staging,
                label=label,
                key=key,
                shard_rows=shard_rows,
                error_budget=budget,
                on_batch=lambda phase, rows: progress.advance(phases[phase], rows),
            )
    with MetadataStore.from_config(config) as store:
        dataset, prepared, is_new = datasets.publish_version(
            store,
            ArtifactStore.from_config(config),
            prepared,
            name=dataset_name,
            source=str(source),
            started=started,
        )
    if prepared.quarantine.count:
        error_console().print(
            f"warning: {prepared.quarantine.count} malformed rows quarantined",
            markup=False,
        )
    state = "registered" if is_new else "already registered"
    console().print(
        f"{state} {dataset.name} (artifact {dataset.id}): "
        + ", ".join(f"{k} {v:,}" for k, v in prepared.rows.items()),
        markup=False,
    )


@app.command("versions")
def versions_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Registered dataset versions, newest first."""
    with existing_store(ctx) as store:
        rows = [
            {
                "id": a.id,
                "dataset": a.properties.get("name"),
                "version": str(a.properties.get("version", ""))[:12],
                "rows": a.properties.get("rows"),
                "label": a.properties.get("label"),
                "created": a.create_time,
                "folder": a.uri,
            }
            for a in datasets.find_versions(store, name)
        ]
    emit(rows, as_json=as_json, title="dataset versions")
