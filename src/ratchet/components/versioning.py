"""Versions of ratchet's pipelines: the compiled spec's content hash plus the git commit.

Owns `PipelineVersion` (what identifies one version of a pipeline: the sha256 of
its compiled KFP IR, the commit of the git working tree it was built from and
whether that tree had uncommitted changes), `pipeline_version`, which computes
it, and `record_pipeline_version`, which keeps it in the metadata store as a
`PipelineVersion` artifact, once per content hash.

The hash is `ratchet.pipelines.spec.PipelineSpec.version`: the same one the
runner files each run under (its `PipelineVersion` context), so a recorded
version and the runs of it agree. Compiling is `ratchet.pipelines.compile_pipeline`'s
job; deciding when a new version is due (re-formalizing) is the formalization's.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratchet.errors import AlreadyExists
from ratchet.metadata import Artifact, Kind, MetadataStore, PropertyType, RecordType
from ratchet.pipelines.spec import git_commit, load

PIPELINE_VERSION = "PipelineVersion"
RECORD_TYPE = RecordType(
    Kind.ARTIFACT,
    PIPELINE_VERSION,
    {
        "pipeline": PropertyType.STRING,
        "git_commit": PropertyType.STRING,
        "dirty": PropertyType.BOOL,
        "short_id": PropertyType.STRING,
    },
)


@dataclass(frozen=True)
class PipelineVersion:
    """One version of a compiled pipeline; `short_id` is how people and logs name it."""

    pipeline: str  # the IR's pipelineInfo.name
    sha256: str  # of the canonical JSON of the IR (kfp's sdkVersion left out)
    git_commit: str | None = None  # None outside a git repository
    dirty: bool = False  # tracked files differed from the commit

    @property
    def short_id(self) -> str:
        """`sha[:12]+commit[:8]`, `-dirty` appended when the tree had changes."""
        short = self.sha256[:12]
        if self.git_commit:
            short += f"+{self.git_commit[:8]}"
        return short + ("-dirty" if self.dirty else "")


def pipeline_version(compiled: object, *, where: Path | None = None) -> PipelineVersion:
    """The version of a compiled spec (YAML/JSON path or IR dict) or a `@dsl.pipeline`.

    `where` is a folder inside the git working tree to read the commit from
    (default: the current directory).
    """
    spec = load(compiled)
    commit = git_commit(where)
    return PipelineVersion(
        pipeline=spec.name,
        sha256=spec.version,
        git_commit=commit,
        dirty=commit is not None and _dirty(where),
    )


def _dirty(where: Path | None) -> bool:
    """Uncommitted changes to tracked files (untracked files do not count, as in
    `git describe --dirty`: build outputs and caches would mark every tree dirty)."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def record_pipeline_version(store: MetadataStore, name: str, version: PipelineVersion) -> Artifact:
    """`version` of pipeline `name` as a `PipelineVersion` artifact; the stored one if its
    hash is known already (the first commit recorded for a spec is kept)."""
    store.put_type(RECORD_TYPE)
    known = _find(store, name, version.sha256)
    if known is not None:
        return known
    properties: dict[str, Any] = {
        "pipeline": name,
        "dirty": version.dirty,
        "short_id": version.short_id,
    }
    if version.git_commit:
        properties["git_commit"] = version.git_commit
    artifact = Artifact(
        PIPELINE_VERSION,
        uri=f"pipeline://{name}/{version.sha256}",
        sha256=version.sha256,
        # Unique per type: a second writer of the same version fails here, not silently.
        name=f"{name}@{version.sha256[:12]}",
        properties=properties,
        custom_properties={"ir_name": version.pipeline},
    )
    try:
        return store.put_artifact(artifact)
    except AlreadyExists:
        # Another process recorded this version between our lookup and our write.
        raced = _find(store, name, version.sha256)
        if raced is None:
            raise
        return raced


def _find(store: MetadataStore, name: str, sha256: str) -> Artifact | None:
    found = store.find_artifacts(
        type=PIPELINE_VERSION, sha256=sha256, properties={"pipeline": name}, limit=1
    )
    return found[0] if found else None
