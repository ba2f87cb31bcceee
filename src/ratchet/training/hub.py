"""The model hub: architectures by handle, and initialized weights by handle and version.

Owns the architecture registry (the built-in `tabular-mlp`; user architectures
from the `ratchet.architectures` entry-point group or from `*.py` files in a
local folder, each defining `ARCHITECTURE = "handle"` and `build(spec) ->
nn.Module`) and the weights registry: weights are stored content-addressed in
the artifact store and recorded as `ModelWeights` artifacts (handle, version,
architecture hash) in the metadata store; loading verifies the content hash.
Nothing is ever downloaded. Training, warmup and pre-training publish here;
tuning and the training pipeline read from here.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ratchet.artifacts import ArtifactStore
from ratchet.errors import AlreadyExists, InvalidArgument, NotFound
from ratchet.metadata import Artifact, Kind, MetadataStore, PropertyType, RecordType
from ratchet.training.models import ARCHITECTURE, MLPSpec, TabularMLP

WEIGHTS = "ModelWeights"
ENTRY_POINTS = "ratchet.architectures"
WEIGHTS_TYPE = RecordType(
    Kind.ARTIFACT,
    WEIGHTS,
    {
        "handle": PropertyType.STRING,
        "version": PropertyType.INT,
        "architecture": PropertyType.STRING,
        "architecture_sha256": PropertyType.STRING,
    },
)
Builder = Callable[[Mapping[str, Any]], nn.Module]


def _build_mlp(spec: Mapping[str, Any]) -> nn.Module:
    return TabularMLP(MLPSpec.from_dict(spec))


@dataclass(frozen=True)
class WeightsRef:
    """Weights in the hub: `handle@version`, and the sha256 of their bytes."""

    handle: str
    version: int
    sha256: str
    architecture: str
    artifact_id: int

    def __str__(self) -> str:
        return f"{self.handle}@{self.version}"


def state_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(data), weights_only=True)
    return state


class Hub:
    def __init__(
        self, store: MetadataStore, artifacts: ArtifactStore, *, folder: Path | None = None
    ) -> None:
        self.store, self.artifacts, self.folder = store, artifacts, folder
        store.put_type(WEIGHTS_TYPE)
        self._builders: dict[str, Builder] = {ARCHITECTURE: _build_mlp}
        self._discovered = False

    # -- architectures ----------------------------------------------------------------

    def register(self, handle: str, build: Builder) -> None:
        if handle in self.architectures():
            raise AlreadyExists(f"architecture {handle!r} is already registered")
        self._builders[handle] = build

    def architectures(self) -> list[str]:
        self._discover()
        return sorted(self._builders)

    def build(self, spec: Mapping[str, Any]) -> nn.Module:
        """The model a spec describes (`spec["architecture"]` is its handle)."""
        handle = spec.get("architecture")
        self._discover()
        if handle not in self._builders:
            known = ", ".join(sorted(self._builders))
            raise NotFound(f"no architecture {handle!r} in the hub (known: {known})")
        return self._builders[str(handle)](spec)

    def _discover(self) -> None:
        """Entry points and the local folder, read once, on first use."""
        if self._discovered:
            return
        self._discovered = True
        for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
            self._builders.setdefault(point.name, point.load())
        if self.folder is None or not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.py")):
            spec = importlib.util.spec_from_file_location(f"ratchet_hub_{path.stem}", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            handle, build = getattr(module, "ARCHITECTURE", None), getattr(module, "build", None)
            if not isinstance(handle, str) or not callable(build):
                raise InvalidArgument(
                    f"{path} must define ARCHITECTURE = 'handle' and build(spec) -> nn.Module"
                )
            self._builders.setdefault(handle, build)

    # -- weights ----------------------------------------------------------------------

    def publish(
        self,
        handle: str,
        state: Mapping[str, torch.Tensor],
        *,
        architecture: Mapping[str, Any],
        architecture_sha256: str,
    ) -> WeightsRef:
        """Store weights as the next version of `handle` (the same bytes again: that version)."""
        if not handle or "@" in handle:
            raise InvalidArgument(f"a weights handle is non-empty text without '@', got {handle!r}")
        stored = self.artifacts.put_bytes(state_bytes(state))
        existing = self.find(handle)
        for ref in existing:
            if ref.sha256 == stored.sha256:
                return ref
        version = existing[0].version + 1 if existing else 1
        written = self.store.put_artifact(
            Artifact(
                WEIGHTS,
                uri=stored.uri,
                sha256=stored.sha256,
                name=f"{handle}@{version}",
                properties={
                    "handle": handle,
                    "version": version,
                    "architecture": str(architecture.get("architecture")),
                    "architecture_sha256": architecture_sha256,
                },
                custom_properties={"spec": dict(architecture)},
            )
        )
        return _ref(written)

    def find(self, handle: str) -> list[WeightsRef]:
        """Versions of `handle`, newest first."""
        found = self.store.find_artifacts(type=WEIGHTS, properties={"handle": handle})
        return sorted((_ref(a) for a in found), key=lambda r: r.version, reverse=True)

    def resolve(self, reference: str) -> WeightsRef:
        """`handle@version`, `handle` (its newest version) or a sha256."""
        handle, _, version = reference.partition("@")
        if len(reference) == 64 and not version:
            by_hash = self.store.find_artifacts(type=WEIGHTS, sha256=reference)
            if by_hash:
                return _ref(by_hash[0])
        versions = self.find(handle)
        if not versions:
            raise NotFound(f"no weights {handle!r} in the hub")
        if not version:
            return versions[0]
        for ref in versions:
            if str(ref.version) == version:
                return ref
        raise NotFound(f"no version {version} of weights {handle!r}")

    def load(self, reference: str | WeightsRef) -> tuple[dict[str, torch.Tensor], WeightsRef]:
        """The weights' state dict, read through the artifact store (which checks the sha256)."""
        ref = reference if isinstance(reference, WeightsRef) else self.resolve(reference)
        with self.artifacts.open(ref.sha256) as f:
            return state_from_bytes(f.read()), ref

    def spec_of(self, ref: WeightsRef) -> dict[str, Any]:
        artifact = self.store.get_artifact(ref.artifact_id)
        spec = artifact.custom_properties["spec"]
        if not isinstance(spec, dict):
            raise InvalidArgument(f"weights {ref} carry no architecture spec")
        return spec


def _ref(artifact: Artifact) -> WeightsRef:
    assert artifact.id is not None and artifact.sha256 is not None
    p = artifact.properties
    return WeightsRef(
        str(p["handle"]),
        int(str(p["version"])),
        artifact.sha256,
        str(p["architecture"]),
        artifact.id,
    )
