"""What is served: bundle folders and registry references, and the /model answer about them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ratchet.artifacts import ArtifactStore
from ratchet.errors import InvalidArgument, NotFound
from ratchet.metadata import MetadataStore
from ratchet.registry import CHAMPION, Registry
from ratchet.serving import create_app, load_model, load_routes


@pytest.fixture
def registry(store: MetadataStore, tmp_path: Path, lightgbm_dir: Path, mlp_dir: Path) -> Registry:
    registry = Registry(store, ArtifactStore(str(tmp_path / "artifacts")))
    registry.register("churn", lightgbm_dir, labels={"team": "growth"}, aliases=(CHAMPION,))
    registry.register("churn", mlp_dir, aliases=("candidate",))
    return registry


def test_references_resolve_through_the_registry(registry: Registry) -> None:
    assert load_model("churn", registry).name == "churn@2"
    champion = load_model("churn:champion", registry)
    assert champion.name == "churn@1" and champion.bundle.framework == "lightgbm"
    assert champion.version is not None and champion.version.aliases == (CHAMPION,)
    assert load_model("churn@2", registry).bundle.framework == "torch"
    with pytest.raises(NotFound, match="no registered model 'other'"):
        load_model("other", registry)


def test_a_folder_is_served_without_a_registry(lightgbm_dir: Path, tmp_path: Path) -> None:
    route = load_model(str(lightgbm_dir), None)
    assert (route.name, route.version) == ("lightgbm", None)
    with pytest.raises(NotFound, match="not a model bundle folder"):
        load_model(str(tmp_path), None)
    with pytest.raises(NotFound, match="no registry was given"):
        load_model("churn", None)


def test_a_split_loads_each_version_once(registry: Registry) -> None:
    routes = load_routes({"churn:champion": 0.9, "churn@2": 0.1}, registry)
    assert [(r.name, r.weight) for r in routes] == [("churn@1", 0.9), ("churn@2", 0.1)]
    with pytest.raises(InvalidArgument, match="churn@1 appears twice"):
        load_routes({"churn:champion": 0.9, "churn@1": 0.1}, registry)


def test_model_metadata_names_versions_and_aliases(
    registry: Registry, client: Callable[[FastAPI], Any]
) -> None:
    routes = load_routes({"churn:champion": 0.75, "churn:candidate": 0.25}, registry)
    described = client(create_app(routes)).get("/model").json()["routes"]
    assert [(r["name"], r["version"], r["aliases"], r["share"]) for r in described] == [
        ("churn", 1, ["champion"], 0.75),
        ("churn", 2, ["candidate"], 0.25),
    ]
    assert described[0]["labels"] == {"team": "growth"}
    assert described[1]["framework"] == "torch" and "test_loss" in described[1]["metrics"]
