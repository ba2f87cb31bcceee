"""Pipeline versions: the compiled spec's content hash, the git commit, and their record.

The store tests run on SQLite and PostgreSQL (the `store` fixture).
"""

import json
import subprocess
from pathlib import Path

import pytest

from ratchet import pipelines
from ratchet.components.training import training_pipeline
from ratchet.components.versioning import (
    PIPELINE_VERSION,
    PipelineVersion,
    pipeline_version,
    record_pipeline_version,
)
from ratchet.metadata import MetadataStore

PIPELINE = """
from kfp import dsl


@dsl.component(base_image="python:3.11")
def step(x: int) -> int:
    return x + {increment}


@dsl.pipeline(name="versioned")
def versioned(x: int = 1) -> int:
    return step(x=x).output
"""


def pipeline_file(folder: Path, increment: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "versioned.py"
    path.write_text(PIPELINE.format(increment=increment))
    return path


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_same_pipeline_compiled_twice_has_one_version(tmp_path: Path) -> None:
    once = pipelines.compile_pipeline(training_pipeline, tmp_path / "a.yaml")
    twice = pipelines.compile_pipeline(training_pipeline, tmp_path / "b.yaml")
    (tmp_path / "c.json").write_text(json.dumps(dict(once.ir), indent=1))  # the same IR as JSON
    versions = {
        pipeline_version(tmp_path / "a.yaml").sha256,
        pipeline_version(tmp_path / "b.yaml").sha256,
        pipeline_version(tmp_path / "c.json").sha256,
        pipeline_version(training_pipeline).sha256,  # the function, compiled in memory
        once.version,  # what the runner files runs under
        twice.version,
    }
    assert len(versions) == 1
    assert pipeline_version(training_pipeline).pipeline == "ratchet-training"


def test_a_changed_component_is_a_new_version(tmp_path: Path) -> None:
    first = pipeline_version(pipeline_file(tmp_path / "a", 1))
    same = pipeline_version(pipeline_file(tmp_path / "b", 1))
    changed = pipeline_version(pipeline_file(tmp_path / "c", 2))
    assert first.sha256 == same.sha256
    assert changed.sha256 != first.sha256
    assert first.pipeline == changed.pipeline == "versioned"


def test_the_kfp_sdk_version_is_not_part_of_the_version(tmp_path: Path) -> None:
    spec = pipelines.compile_pipeline(pipeline_file(tmp_path, 1), tmp_path / "p.yaml")
    ir = dict(spec.ir)
    assert pipeline_version({**ir, "sdkVersion": "kfp-9.9.9"}).sha256 == spec.version
    assert pipeline_version({**ir, "defaultPipelineRoot": "/x"}).sha256 != spec.version


def test_the_commit_and_dirty_flag_of_a_git_working_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    spec = pipelines.compile_pipeline(pipeline_file(repo, 1), repo / "versioned.yaml")
    git(repo, "init", "-q")
    git(repo, "add", "versioned.py")
    git(repo, "commit", "-qm", "a pipeline")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "notes.txt").write_text("untracked files leave the tree clean")
    clean = pipeline_version(repo / "versioned.yaml", where=repo)
    assert clean == PipelineVersion("versioned", spec.version, head, dirty=False)
    assert clean.short_id == f"{spec.version[:12]}+{head[:8]}"
    pipeline_file(repo, 2)  # a tracked file changed, not committed
    dirty = pipeline_version(repo / "versioned.yaml", where=repo)
    assert dirty.dirty and dirty.git_commit == head
    assert dirty.short_id == f"{spec.version[:12]}+{head[:8]}-dirty"


def test_outside_a_git_repository_there_is_no_commit(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    spec = pipelines.compile_pipeline(pipeline_file(outside, 1), outside / "p.yaml")
    if subprocess.run(["git", "rev-parse"], cwd=outside, capture_output=True).returncode == 0:
        pytest.skip("the temporary folder is inside a git repository")
    version = pipeline_version(outside / "p.yaml", where=outside)
    assert (version.git_commit, version.dirty) == (None, False)
    assert version.short_id == spec.version[:12]


def test_a_version_is_recorded_once_per_content_hash(store: MetadataStore) -> None:
    version = PipelineVersion("ratchet-training", "a" * 64, "c" * 40, dirty=True)
    recorded = record_pipeline_version(store, "churn-training", version)
    assert recorded.type == PIPELINE_VERSION and recorded.sha256 == "a" * 64
    assert recorded.properties == {
        "pipeline": "churn-training",
        "git_commit": "c" * 40,
        "dirty": True,
        "short_id": f"{'a' * 12}+{'c' * 8}-dirty",
    }
    # The same spec from another commit is the same version: the first record stands.
    again = record_pipeline_version(store, "churn-training", PipelineVersion("x", "a" * 64))
    assert again.id == recorded.id and again.properties["git_commit"] == "c" * 40
    other = record_pipeline_version(store, "churn-training", PipelineVersion("x", "b" * 64))
    elsewhere = record_pipeline_version(store, "taxi-training", version)
    assert len({recorded.id, other.id, elsewhere.id}) == 3
    assert "git_commit" not in other.properties  # recorded outside a repository
    assert len(store.find_artifacts(type=PIPELINE_VERSION)) == 3
