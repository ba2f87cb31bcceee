"""The AutoML baseline as a KFP component: the bar a custom model is held to, and its teacher.

Owns `baseline_step`, which the training pipeline runs when it prepares new
weights (re-formalizing): FLAML on the dataset version's own splits, registered
with its floors as `<model>-baseline` (`ratchet.baseline` does the work). Its
AutoML model then labels the synthetic rows pre-training learns from.
No `from __future__ import annotations` here: kfp reads the annotations as types.
"""

from kfp import dsl

from ratchet.components.data import IMAGE


@dsl.component(base_image=IMAGE)
def baseline_step(
    model_name: str, dataset: str, dataset_version: str, teacher: str, budget: float, seed: int
) -> str:
    """The teacher's registry reference: `teacher` when one is given, else a new
    baseline's AutoML version (`<model_name>-baseline@N`), else (`budget` 0) none."""
    import time
    from pathlib import Path

    from ratchet.artifacts import ArtifactStore
    from ratchet.baseline import record_baseline, run_baseline
    from ratchet.config import load_config
    from ratchet.metadata import MetadataStore
    from ratchet.registry import Registry

    if teacher or budget <= 0:
        return teacher
    config = load_config()
    folder = config.home / "baselines" / model_name / f"{dataset_version[:12]}-{time.time_ns()}"
    result = run_baseline(Path(dataset), folder, budget_seconds=budget, seed=seed, n_jobs=1)
    with MetadataStore.from_config(config) as store:
        found = store.find_artifacts(type="Dataset", sha256=dataset_version, newest_first=True)
        registry = Registry(store, ArtifactStore.from_config(config))
        versions = record_baseline(
            registry, result, name=f"{model_name}-baseline", dataset=found[0] if found else None
        )
    return str(versions[0])
