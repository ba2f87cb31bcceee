"""`ratchet models list|show|promote|rollback|evaluate|compare`: the registry from the shell.

Owns resolving `--data` (a prepared dataset folder's `raw_test` split, a
registered dataset name with an optional `@VERSION` prefix, any CSV/Parquet
source, or by default the dataset in the model's lineage), parsing `--slice`
(`COLUMN` for one slice per value, `COLUMN:E1,E2` for numeric buckets) and the
tables. Versions and aliases are `ratchet.registry`'s; metrics, recording and
the gate are `ratchet.evaluation`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
import typer

from ratchet import datasets
from ratchet.artifacts import ArtifactStore
from ratchet.cli.context import existing_store
from ratchet.cli.output import console, emit, error_console, print_json, print_table
from ratchet.config import Config
from ratchet.data.io import open_source
from ratchet.errors import InvalidArgument, NotFound
from ratchet.evaluation import (
    Buckets,
    Evaluation,
    Values,
    compare,
    find_decisions,
    find_evaluations,
    record_evaluation,
)
from ratchet.evaluation import evaluate as evaluate_bundle
from ratchet.evaluation.metrics import metric_names
from ratchet.metadata import Artifact
from ratchet.registry import CHAMPION, MOVE_ALIAS, REGISTERED_MODEL, ModelVersion, Registry

app = typer.Typer(
    help="Registered models: versions, aliases, evaluation and promotion.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
AliasOption = Annotated[str, typer.Option("--alias", help="The alias to move.")]
DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Prepared dataset folder (its raw_test split), registered dataset NAME[@VERSION] "
        "or CSV/Parquet source; default: the dataset in the model's lineage.",
    ),
]
SliceOption = Annotated[
    list[str] | None,
    typer.Option("--slice", help="COLUMN (a slice per value) or COLUMN:E1,E2 (buckets); repeat."),
]


@contextmanager
def _registry(ctx: typer.Context) -> Iterator[Registry]:
    config: Config = ctx.obj
    with existing_store(ctx) as store:
        yield Registry(store, ArtifactStore.from_config(config))


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias}={version}" for alias, version in sorted(aliases.items()))


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Registered models with their number of versions and their aliases."""
    with _registry(ctx) as registry:
        rows = []
        for name in registry.models():
            versions = registry.versions(name)
            latest = versions[0] if versions else None
            rows.append(
                {
                    "model": name,
                    "versions": len(versions),
                    "latest": latest.version if latest else None,
                    "framework": latest.framework if latest else None,
                    "aliases": registry.aliases(name)
                    if as_json
                    else _aliases(registry.aliases(name)),
                    "updated": latest.created if latest else None,
                }
            )
    emit(rows, as_json=as_json, title="registered models")


@app.command("show")
def show_command(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME:ALIAS.")],
    as_json: JsonOption = False,
) -> None:
    """A model's versions, aliases and alias moves; or one version's labels, metrics,
    lineage, evaluations and gate decisions."""
    with _registry(ctx) as registry:
        if "@" in reference or ":" in reference:
            _show_version(registry, registry.get(reference), as_json=as_json)
        else:
            _show_model(registry, reference, as_json=as_json)


def _show_model(registry: Registry, name: str, *, as_json: bool) -> None:
    versions = registry.versions(name)
    if not versions:
        raise NotFound(f"no registered model {name!r}")
    context = registry.store.find_context(REGISTERED_MODEL, name)
    assert context is not None  # versions exist, so does their model
    moves = [
        {
            "time": m.create_time,
            "alias": m.properties.get("alias"),
            "from": m.properties.get("from_version"),
            "to": m.properties.get("to_version"),
            "reason": m.properties.get("reason", ""),
        }
        for m in registry.store.find_executions(type=MOVE_ALIAS, context=context.id)
    ]
    rows = [
        {
            "version": v.version,
            "framework": v.framework,
            "aliases": list(v.aliases) if as_json else ", ".join(v.aliases),
            "labels": v.labels if as_json else _pairs(v.labels),
            "metrics": v.metrics if as_json else _pairs(v.metrics),
            "created": v.created,
        }
        for v in versions
    ]
    if as_json:
        print_json(
            {"model": name, "aliases": registry.aliases(name), "versions": rows, "moves": moves}
        )
        return
    print_table(rows, title=f"{name}: {_aliases(registry.aliases(name)) or 'no aliases'}")
    print_table(moves, title="alias moves", columns=("time", "alias", "from", "to", "reason"))


def _show_version(registry: Registry, version: ModelVersion, *, as_json: bool) -> None:
    store = registry.store
    graph = store.lineage(artifact_id=version.artifact_id, direction="upstream", depth=4)
    upstream = [
        {"id": a.id, "type": a.type, "name": a.name or "", "uri": a.uri}
        for a in graph.artifacts
        if a.id != version.artifact_id
    ]
    evaluations: list[dict[str, Any]] = [
        {
            "id": a.id,
            "rows": a.properties.get("rows"),
            "fingerprint": str(a.properties.get("fingerprint", ""))[:12],
            "dataset": str(a.properties.get("dataset_version", ""))[:12],
            "metrics": a.custom_properties.get("metrics", {}),
            "created": a.create_time,
        }
        for a in find_evaluations(store, version.name, version.version)
    ]
    decisions: list[dict[str, Any]] = [
        {
            "id": a.id,
            "candidate": a.properties.get("candidate_version"),
            "champion": a.properties.get("champion_version"),
            "promote": a.properties.get("promote"),
            "reasons": a.custom_properties.get("reasons", []),
            "created": a.create_time,
        }
        for a in find_decisions(store, version.name)
        if version.version
        in (a.properties.get("candidate_version"), a.properties.get("champion_version"))
    ]
    summary = {**asdict(version), "aliases": list(version.aliases)}
    if as_json:
        print_json(
            {**summary, "upstream": upstream, "evaluations": evaluations, "decisions": decisions}
        )
        return
    shown = {**summary, "aliases": ", ".join(version.aliases)}
    fields = [
        {"field": k, "value": _pairs(v) if isinstance(v, dict) else v} for k, v in shown.items()
    ]
    print_table(fields, title=str(version))
    print_table(upstream, title="lineage (upstream)", columns=("id", "type", "name", "uri"))
    for row in evaluations:
        row["metrics"] = _pairs(row["metrics"])
    print_table(
        evaluations,
        title="evaluations",
        columns=("id", "rows", "fingerprint", "dataset", "metrics", "created"),
    )
    for row in decisions:
        row["reasons"] = "; ".join(row["reasons"])
    print_table(
        decisions,
        title="gate decisions",
        columns=("id", "candidate", "champion", "promote", "reasons", "created"),
    )


@app.command("promote")
def promote_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[int, typer.Argument(help="The version to point the alias at.")],
    alias: AliasOption = CHAMPION,
    reason: Annotated[str, typer.Option(help="Why, kept with the move.")] = "promoted by hand",
) -> None:
    """Point an alias (champion by default) at a version, bypassing the gate."""
    with _registry(ctx) as registry:
        previous = registry.set_alias(name, alias, version, reason=reason)
    was = f" (was {previous})" if previous is not None else ""
    console().print(f"{name}:{alias} -> version {version}{was}", markup=False)


@app.command("rollback")
def rollback_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: AliasOption = CHAMPION,
) -> None:
    """Point an alias back at the version it pointed at before its last move."""
    with _registry(ctx) as registry:
        version = registry.rollback(name, alias)
    console().print(f"{name}:{alias} -> version {version.version} (rolled back)", markup=False)


def parse_slices(values: list[str] | None) -> list[Values | Buckets]:
    """`COLUMN` -> one slice per value; `COLUMN:E1,E2,...` -> numeric buckets."""
    found: list[Values | Buckets] = []
    for text in values or []:
        column, sep, edges = text.partition(":")
        if not column:
            raise InvalidArgument(f"--slice {text!r}: give COLUMN or COLUMN:E1,E2")
        if not sep:
            found.append(Values(column))
            continue
        try:
            found.append(Buckets(column, tuple(float(e) for e in edges.split(","))))
        except ValueError:
            raise InvalidArgument(f"--slice {text!r}: bucket edges must be numbers") from None
    return found


def _dataset_rows(
    config: Config, registry: Registry, data: str | None, version: ModelVersion
) -> tuple[pa.Table, str | None, str]:
    """(rows, dataset version hash or None, where they came from) for `--data`."""
    store = registry.store
    if data is None:
        graph = store.lineage(artifact_id=version.artifact_id, direction="upstream", depth=6)
        found = [a for a in graph.artifacts if a.type == datasets.DATASET]
        if not found:
            raise InvalidArgument(f"give --data: {version} has no dataset version in its lineage")
        return _raw_test(Path(found[0].uri)), found[0].sha256, str(found[0].name)
    path = Path(data)
    if path.is_dir() and (path / "raw_test").is_dir():
        known = [
            a
            for uri in {str(path), str(path.resolve())}
            for a in store.find_artifacts(type=datasets.DATASET, uri=uri)
        ]
        return _raw_test(path), known[0].sha256 if known else None, str(path)
    if path.exists() or any(c in data for c in "*?["):
        source = open_source(data, errors_path=config.home / "quarantine")
        table = pa.Table.from_batches(list(source.batches()))
        if source.quarantine.count:
            error_console().print(
                f"warning: {source.quarantine.count} malformed rows of {data} left out "
                f"(see {source.quarantine.path})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        return table, None, data
    name, _, prefix = data.partition("@")
    versions = [
        a for a in datasets.find_versions(store, name) if (a.sha256 or "").startswith(prefix)
    ]
    if not versions:
        raise NotFound(f"--data {data!r} is neither a file or folder nor a registered dataset")
    return _raw_test(Path(versions[0].uri)), versions[0].sha256, str(versions[0].name)


def _raw_test(folder: Path) -> pa.Table:
    shards = sorted((folder / "raw_test").glob("*.parquet"))
    if not shards:
        raise NotFound(f"{folder} has no raw_test split to evaluate on")
    return pa.concat_tables(pq.read_table(shard) for shard in shards)


def _record(
    registry: Registry, evaluation: Evaluation, version: ModelVersion, dataset: str | None
) -> Artifact:
    return record_evaluation(
        registry.store,
        registry.artifacts,
        evaluation,
        model_version=version,
        dataset_version=dataset,
    )


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME:ALIAS.")],
    data: DataOption = None,
    slices: SliceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a version overall and per slice; recorded as an Evaluation artifact."""
    chosen = parse_slices(slices)
    with _registry(ctx) as registry:
        bundle, version = registry.load(reference)
        rows, dataset, source = _dataset_rows(ctx.obj, registry, data, version)
        evaluation = evaluate_bundle(bundle, rows, slices=chosen)
        recorded = _record(registry, evaluation, version, dataset)
    note = f"recorded as Evaluation artifact {recorded.id}"
    if as_json:
        print_json({"model": str(version), "evaluation_id": recorded.id, **evaluation.to_dict()})
        error_console().print(note, markup=False, highlight=False)
        return
    names = metric_names(evaluation.task)
    table = [
        {"slice": s.name, "rows": s.rows, **{m: s.metrics.get(m) for m in names}}
        for s in (evaluation.overall, *evaluation.slices)
    ]
    print_table(table, title=f"{version} on {source}")
    console().print(note, markup=False)


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="First model: NAME, NAME@VERSION or NAME:ALIAS.")],
    b: Annotated[str, typer.Argument(help="Second model, evaluated on the same rows.")],
    data: DataOption = None,
    slices: SliceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate two versions on the same rows and print a table per slice; both recorded."""
    chosen = parse_slices(slices)
    with _registry(ctx) as registry:
        first, first_version = registry.load(a)
        second, second_version = registry.load(b)
        rows, dataset, source = _dataset_rows(ctx.obj, registry, data, first_version)
        left = evaluate_bundle(first, rows, slices=chosen)
        right = evaluate_bundle(second, rows, slices=chosen)
        found = compare(left, right)  # refuses different tasks before anything is recorded
        ids = [
            _record(registry, e, v, dataset).id
            for e, v in ((left, first_version), (right, second_version))
        ]
    names = (str(first_version), str(second_version))
    if names[0] == names[1]:  # a version against itself: the columns still need two names
        names = (f"{names[0]} (a)", f"{names[1]} (b)")
    note = f"recorded as Evaluation artifacts {ids[0]} and {ids[1]}"
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in found:
        groups.setdefault(c.slice, []).append(asdict(c))
    if as_json:
        keys = ("metric", "a", "b", "delta", "better")
        per_slice = [
            {
                "slice": name,
                "group": group[0]["group"],
                "rows": group[0]["rows"],
                "metrics": [{k: r[k] for k in keys} for r in group],
            }
            for name, group in groups.items()
        ]
        print_json(
            {
                "a": names[0],
                "b": names[1],
                "data": source,
                "fingerprint": left.fingerprint,
                "evaluation_ids": ids,
                "slices": per_slice,
            }
        )
        error_console().print(note, markup=False, highlight=False)
        return
    for name, group in groups.items():
        table = [
            {
                "metric": r["metric"],
                names[0]: r["a"],
                names[1]: r["b"],
                "delta": r["delta"],
                "better": {"a": names[0], "b": names[1]}.get(r["better"], ""),
            }
            for r in group
        ]
        print_table(table, title=f"{name} ({group[0]['rows']} rows)")
    console().print(f"{names[0]} and {names[1]} on {source}; {note}", markup=False)
