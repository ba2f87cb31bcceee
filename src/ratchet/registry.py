"""The model registry: named models, numbered versions, movable aliases, labels and lineage.

Owns `Registry` on the metadata and artifact stores: a `RegisteredModel`
context per name; a `ModelVersion` artifact per version (the serving bundle
stored content-addressed, its framework, labels and metrics), produced by a
`RegisterModel` execution whose inputs (the training job's model, the dataset
version, the hyperparameters) carry the lineage back to the training run;
aliases (`champion`, `candidate`, `baseline`, any name) as one property each
on the model's context, so moving one is a single atomic write, every move
recorded as a `MoveAlias` execution (from, to, reason) which is what
`rollback` reads. Evaluation and the gate live in `ratchet.evaluation`;
loading a version for serving is `load`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ratchet.artifacts import ArtifactStore
from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound
from ratchet.metadata import (
    Artifact,
    Context,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.rows import to_datetime
from ratchet.training.bundle import MANIFEST, Bundle, load_bundle

REGISTERED_MODEL, MODEL_VERSION = "RegisteredModel", "ModelVersion"
REGISTER, MOVE_ALIAS = "RegisterModel", "MoveAlias"
ALIAS_PREFIX = "alias."
CHAMPION, CANDIDATE, BASELINE = "champion", "candidate", "baseline"
TYPES = (
    RecordType(Kind.CONTEXT, REGISTERED_MODEL, {"description": PropertyType.STRING}),
    RecordType(
        Kind.ARTIFACT,
        MODEL_VERSION,
        {
            "model": PropertyType.STRING,
            "version": PropertyType.INT,
            "framework": PropertyType.STRING,
        },
    ),
    RecordType(Kind.EXECUTION, REGISTER, {"model": PropertyType.STRING}),
    RecordType(
        Kind.EXECUTION,
        MOVE_ALIAS,
        {
            "model": PropertyType.STRING,
            "alias": PropertyType.STRING,
            "from_version": PropertyType.INT,
            "to_version": PropertyType.INT,
            "reason": PropertyType.STRING,
        },
    ),
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    sha256: str
    framework: str
    artifact_id: int
    labels: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created: datetime | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"{what} {name!r} must be 1-128 letters, digits, '_', '.' or '-', starting with "
            "a letter or digit"
        )
    return name


class Registry:
    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store, self.artifacts = store, artifacts
        for record_type in TYPES:
            store.put_type(record_type)

    # -- writing ----------------------------------------------------------------------

    def register(
        self,
        name: str,
        bundle: Path,
        *,
        labels: Mapping[str, str] | None = None,
        inputs: Mapping[str, Artifact] | None = None,
        aliases: tuple[str, ...] = (),
    ) -> ModelVersion:
        """Store a serving bundle as the next version of `name` (created on first use)."""
        _check_name("model name", name)
        for alias in aliases:
            _check_name("alias", alias)
        if not (bundle / MANIFEST).exists():
            raise NotFound(f"{bundle} is not a model bundle (no {MANIFEST})")
        manifest = load_bundle(bundle).manifest  # refuses a bundle that cannot serve
        context = self._context(name, create=True)
        stored = self.artifacts.put(bundle)
        versions = self.versions(name)
        number = versions[0].version + 1 if versions else 1
        artifact = Artifact(
            MODEL_VERSION,
            uri=stored.uri,
            sha256=stored.sha256,
            name=f"{name}@{number}",
            properties={"model": name, "version": number, "framework": manifest["framework"]},
            custom_properties={
                "labels": dict(labels or {}),
                "metrics": dict(manifest.get("metrics", {})),
            },
        )
        now = to_datetime(time.time())
        written = self.store.put_execution(
            Execution(REGISTER, state=ExecutionState.COMPLETE, properties={"model": name},
                      start_time=now, end_time=now),
            inputs=dict(inputs or {}),
            outputs={"version": artifact},
            contexts=[context],
        )  # fmt: skip
        version_artifact = written.outputs["version"]
        for alias in aliases:
            self.set_alias(name, alias, number, reason="set at registration")
        return self._version(version_artifact, self._aliases(self._context(name)))

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> int | None:
        """Point `alias` at `version`; returns the version it pointed at before."""
        _check_name("alias", alias)
        context = self._context(name)
        self.get(f"{name}@{version}")
        previous = self._aliases(context).get(alias)
        assert context.id is not None
        self.store.set_properties(
            Kind.CONTEXT, context.id, custom_properties={f"{ALIAS_PREFIX}{alias}": version}
        )
        properties: dict[str, Any] = {"model": name, "alias": alias, "to_version": version}
        if previous is not None:
            properties["from_version"] = previous
        if reason:
            properties["reason"] = reason[:2000]
        now = to_datetime(time.time())
        self.store.put_execution(
            Execution(MOVE_ALIAS, state=ExecutionState.COMPLETE, properties=properties,
                      start_time=now, end_time=now),
            contexts=[context],
        )  # fmt: skip
        return previous

    def rollback(self, name: str, alias: str = CHAMPION) -> ModelVersion:
        """Point `alias` back at the version it pointed at before its last move."""
        context = self._context(name)
        moves = [
            m
            for m in self.store.find_executions(
                type=MOVE_ALIAS, context=context.id, newest_first=True
            )
            if m.properties.get("alias") == alias
        ]
        if not moves or "from_version" not in moves[0].properties:
            raise FailedPrecondition(f"{name}:{alias} has no earlier version to roll back to")
        earlier = int(str(moves[0].properties["from_version"]))
        self.set_alias(
            name,
            alias,
            earlier,
            reason=f"rollback from version {moves[0].properties['to_version']}",
        )
        return self.get(f"{name}@{earlier}")

    def set_labels(self, name: str, version: int, labels: Mapping[str, str]) -> ModelVersion:
        found = self.get(f"{name}@{version}")
        merged = {**found.labels, **{str(k): str(v) for k, v in labels.items()}}
        self.store.set_properties(
            Kind.ARTIFACT, found.artifact_id, custom_properties={"labels": merged}
        )
        return self.get(f"{name}@{version}")

    # -- reading ----------------------------------------------------------------------

    def models(self) -> list[str]:
        return sorted(c.name for c in self.store.find_contexts(type=REGISTERED_MODEL))

    def versions(self, name: str) -> list[ModelVersion]:
        """Versions of `name`, newest first."""
        context = self.store.find_context(REGISTERED_MODEL, name)
        if context is None:
            return []
        aliases = self._aliases(context)
        found = self.store.find_artifacts(type=MODEL_VERSION, properties={"model": name})
        versions = [self._version(a, aliases) for a in found]
        return sorted(versions, key=lambda v: v.version, reverse=True)

    def aliases(self, name: str) -> dict[str, int]:
        return self._aliases(self._context(name))

    def get(self, reference: str) -> ModelVersion:
        """`name` (newest version), `name@3` or `name:champion`."""
        if "@" in reference:
            name, _, number = reference.partition("@")
            if not number.isdigit():
                raise InvalidArgument(f"version in {reference!r} must be a number")
            for version in self.versions(name):
                if version.version == int(number):
                    return version
            raise NotFound(f"model {name!r} has no version {number}")
        name, _, alias = reference.partition(":")
        versions = self.versions(name)
        if not versions:
            raise NotFound(f"no registered model {name!r}")
        if not alias:
            return versions[0]
        for version in versions:
            if alias in version.aliases:
                return version
        raise NotFound(f"model {name!r} has no alias {alias!r}")

    def load(self, reference: str) -> tuple[Bundle, ModelVersion]:
        """The version's serving bundle, from the artifact store (its hash checked)."""
        version = self.get(reference)
        return load_bundle(self.artifacts.get(version.sha256)), version

    def _context(self, name: str, *, create: bool = False) -> Context:
        context = self.store.find_context(REGISTERED_MODEL, name)
        if context is not None:
            return context
        if not create:
            raise NotFound(f"no registered model {name!r}")
        return self.store.put_context(Context(REGISTERED_MODEL, name))

    def _aliases(self, context: Context) -> dict[str, int]:
        return {
            key.removeprefix(ALIAS_PREFIX): int(str(value))
            for key, value in context.custom_properties.items()
            if key.startswith(ALIAS_PREFIX)
        }

    def _version(self, artifact: Artifact, aliases: Mapping[str, int]) -> ModelVersion:
        assert artifact.id is not None and artifact.sha256 is not None
        number = int(str(artifact.properties["version"]))
        labels = artifact.custom_properties.get("labels") or {}
        metrics = artifact.custom_properties.get("metrics") or {}
        return ModelVersion(
            name=str(artifact.properties["model"]),
            version=number,
            sha256=artifact.sha256,
            framework=str(artifact.properties.get("framework", "")),
            artifact_id=artifact.id,
            labels=dict(labels) if isinstance(labels, dict) else {},
            metrics=dict(metrics) if isinstance(metrics, dict) else {},
            aliases=tuple(sorted(a for a, v in aliases.items() if v == number)),
            created=artifact.create_time,
        )
