from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from ratchet.artifacts import ArtifactStore
from ratchet.data.engines.local import PreparedDataset
from ratchet.errors import CorruptedArtifact, InvalidArgument, NotFound
from ratchet.metadata import MetadataStore
from ratchet.training.hub import Hub
from ratchet.training.models import TabularMLP, mlp_spec
from ratchet.training.pretrain import PretrainConfig, pretrain
from ratchet.training.synthetic import SyntheticGenerator
from ratchet.training.task import detect_task
from ratchet.training.warmup import WarmupConfig, warm_up

VERSION = "d" * 64  # the dataset version the tests pretend to train on


@pytest.fixture
def hub(store: MetadataStore, tmp_path: Path) -> Hub:
    return Hub(store, ArtifactStore(str(tmp_path / "artifacts")), folder=tmp_path / "architectures")


def spec_of(dataset: PreparedDataset):  # type: ignore[no-untyped-def]
    return mlp_spec(dataset.transform, detect_task(dataset.train_statistics), hidden=(8,))


def untrained(hub: Hub, spec):  # type: ignore[no-untyped-def]
    """Freshly initialised weights of `spec`, published: where pre-training starts."""
    model = TabularMLP(spec)
    return hub.publish(
        "start", model.state_dict(), architecture=spec.to_dict(), architecture_sha256=spec.sha256
    )


def test_weights_get_versions_and_load_verified(hub: Hub, dataset: PreparedDataset) -> None:
    spec = spec_of(dataset)
    first = TabularMLP(spec).state_dict()
    ref1 = hub.publish(
        "churn-domain", first, architecture=spec.to_dict(), architecture_sha256=spec.sha256
    )
    second = {k: v + 1 for k, v in first.items()}
    ref2 = hub.publish(
        "churn-domain", second, architecture=spec.to_dict(), architecture_sha256=spec.sha256
    )
    again = hub.publish(
        "churn-domain", first, architecture=spec.to_dict(), architecture_sha256=spec.sha256
    )
    assert (ref1.version, ref2.version, again.version) == (1, 2, 1)
    assert hub.resolve("churn-domain") == ref2
    assert hub.resolve("churn-domain@1") == ref1
    assert hub.resolve(ref1.sha256) == ref1
    loaded, ref = hub.load("churn-domain@1")
    assert ref == ref1 and all(torch.equal(loaded[k], first[k]) for k in first)
    model = hub.build(hub.spec_of(ref1))
    model.load_state_dict(loaded)
    with pytest.raises(NotFound, match="no version 7"):
        hub.resolve("churn-domain@7")
    with pytest.raises(NotFound, match="no weights 'other'"):
        hub.resolve("other")
    with pytest.raises(InvalidArgument, match="without '@'"):
        hub.publish("a@b", first, architecture=spec.to_dict(), architecture_sha256=spec.sha256)
    path = Path(hub.artifacts.uri(ref1.sha256).removeprefix("file://"))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptedArtifact):
        hub.load(ref1)


def test_architectures_from_a_local_folder(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "architectures"
    folder.mkdir()
    (folder / "tiny.py").write_text(
        "from torch import nn\n"
        "ARCHITECTURE = 'tiny-linear'\n"
        "def build(spec):\n"
        "    return nn.Linear(spec['inputs'], 1)\n"
    )
    assert "tiny-linear" in hub.architectures()
    assert "tabular-mlp" in hub.architectures()
    model = hub.build({"architecture": "tiny-linear", "inputs": 3})
    assert model(torch.ones(2, 3)).shape == (2, 1)
    with pytest.raises(NotFound, match="no architecture 'huge'"):
        hub.build({"architecture": "huge"})


def test_warmup_is_trained_once_then_a_cache_hit(hub: Hub, dataset: PreparedDataset) -> None:
    task = detect_task(dataset.train_statistics)
    spec = spec_of(dataset)
    config = WarmupConfig(steps=30, start_lr=1e-4, learning_rate=3e-3, batch_size=64)
    first = warm_up(hub, spec, dataset.folder, task, dataset_version=VERSION, config=config, seed=1)
    assert not first.cached
    runs = len(hub.store.find_executions(type="Warmup"))
    second = warm_up(
        hub, spec, dataset.folder, task, dataset_version=VERSION, config=config, seed=1
    )
    assert second.cached and second.weights == first.weights
    assert len(hub.store.find_executions(type="Warmup")) == runs  # nothing was trained
    cached, _ = hub.load(second.weights)
    assert cached.keys() == TabularMLP(spec).state_dict().keys()
    other = warm_up(hub, spec, dataset.folder, task, dataset_version=VERSION, config=config, seed=2)
    assert not other.cached and other.weights.sha256 != first.weights.sha256
    [execution] = [
        e
        for e in hub.store.find_executions(type="Warmup")
        if e.custom_properties["cache_key"] == first.key
    ]
    graph = hub.store.lineage(execution_id=execution.id, direction="downstream", depth=1)
    assert {a.sha256 for a in graph.artifacts} == {first.weights.sha256}


def test_warmup_configs_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="steps or epochs"):
        WarmupConfig()
    with pytest.raises(InvalidArgument, match="steps or epochs"):
        WarmupConfig(steps=3, epochs=1)
    assert WarmupConfig(epochs=2, batch_size=10).total_steps(95) == 20


def test_pretraining_follows_warmup_in_lineage(hub: Hub, dataset: PreparedDataset) -> None:
    task = detect_task(dataset.train_statistics)
    spec = spec_of(dataset)
    warm = warm_up(
        hub,
        spec,
        dataset.folder,
        task,
        dataset_version=VERSION,
        config=WarmupConfig(steps=10),
        seed=0,
    )

    def rule(rows: pa.Table) -> np.ndarray:
        return (np.asarray(rows["a"].to_numpy(zero_copy_only=False)) > 0).astype(np.int64)

    generator = SyntheticGenerator.from_statistics(dataset.train_statistics, labeller=rule)
    config = PretrainConfig(rows=2000, epochs=1, batch_size=128)
    ref = pretrain(
        hub,
        spec,
        dataset.folder,
        task,
        start=warm.weights,
        generator=generator,
        labeller_name="a>0",
        dataset_version=VERSION,
        config=config,
    )
    assert ref.sha256 != warm.weights.sha256
    again = pretrain(
        hub,
        spec,
        dataset.folder,
        task,
        start=warm.weights,
        generator=generator,
        labeller_name="a>0",
        dataset_version=VERSION,
        config=config,
    )
    assert again == ref
    graph = hub.store.lineage(artifact_id=ref.artifact_id, direction="upstream", depth=4)
    assert {e.type for e in graph.executions} == {"Warmup", "Pretrain"}


def test_pretraining_keeps_going_when_validation_holds_one_class(
    hub: Hub, dataset: PreparedDataset, tmp_path: Path
) -> None:
    """ROC AUC, which pre-training keeps its best epoch by, needs both classes: with one
    class in the validation rows it falls back to the loss instead of failing."""
    import shutil

    import pyarrow.parquet as pq

    task = detect_task(dataset.train_statistics)
    folder = tmp_path / "one-class"
    shutil.copytree(dataset.folder, folder)
    for shard in (folder / "validation").glob("*.parquet"):
        table = pq.read_table(shard)
        pq.write_table(table.filter(pa.compute.equal(table["churned"], 0)), shard)
    spec = spec_of(dataset)
    generator = SyntheticGenerator.from_statistics(
        dataset.train_statistics, labeller=lambda rows: np.zeros(rows.num_rows, np.int64)
    )
    ref = pretrain(hub, spec, folder, task, start=untrained(hub, spec), generator=generator,
                   labeller_name="zero", dataset_version=VERSION,
                   config=PretrainConfig(rows=500, epochs=2, batch_size=128))  # fmt: skip
    assert hub.load(ref)[0].keys() == TabularMLP(spec).state_dict().keys()
    graph = hub.store.lineage(artifact_id=ref.artifact_id, direction="upstream", depth=1)
    assert [e.type for e in graph.executions] == ["Pretrain"]


def test_soft_targets_carry_the_teachers_probabilities(hub: Hub, dataset: PreparedDataset) -> None:
    """A student distilled on the teacher's probabilities ranks rows as the teacher does,
    and far better than one taught the teacher's argmax on the same rows."""
    task = detect_task(dataset.train_statistics)
    spec = spec_of(dataset)
    start = untrained(hub, spec)

    def teacher(rows: pa.Table) -> np.ndarray:  # P(churned) rises with `a`; mostly "0" wins
        # Rows as the student sees them: transformed (`a` standardised, missing as 0).
        a = np.nan_to_num(np.asarray(rows["a"].to_numpy(zero_copy_only=False), np.float64))
        positive = 0.3 / (1 + np.exp(-2 * a))
        return np.stack([1 - positive, positive], axis=1)

    def argmax(rows: pa.Table) -> np.ndarray:  # raw rows, as a generator's labeller gets them
        return np.asarray(task.classes)[teacher(dataset.transform.apply(rows)).argmax(axis=1)]

    generator = SyntheticGenerator.from_statistics(dataset.train_statistics, labeller=argmax)
    config = PretrainConfig(rows=4000, epochs=3, batch_size=128, learning_rate=1e-2)
    common = dict(start=start, generator=generator, dataset_version=VERSION, config=config)
    soft = pretrain(hub, spec, dataset.folder, task, labeller_name="soft", soft_targets=teacher,
                    **common)  # type: ignore[arg-type]  # fmt: skip
    hard = pretrain(hub, spec, dataset.folder, task, labeller_name="hard", **common)  # type: ignore[arg-type]
    assert soft != hard  # whether targets are soft keys the cache too
    rows = generator.sample(2000, seed=11)
    expected = teacher(dataset.transform.apply(rows))[:, 1]

    def student(ref):  # type: ignore[no-untyped-def]
        model = TabularMLP(spec)
        model.load_state_dict(hub.load(ref)[0])
        model.eval()
        encoded = dataset.transform.apply(rows)
        columns = {name: encoded[name].to_numpy() for name in spec.features}
        inputs = {
            name: torch.from_numpy(
                array.astype(np.float32) if array.dtype.kind == "f" else array.astype(np.int64)
            )
            for name, array in columns.items()
        }
        with torch.no_grad():
            return torch.sigmoid(model(inputs)[:, 0]).numpy()

    taught = student(soft)
    assert np.corrcoef(taught, expected)[0, 1] > 0.9
    assert abs(float(taught.mean()) - float(expected.mean())) < 0.05
    assert float(student(hard).mean()) < 0.05  # the argmax says "never churns"


def test_real_rows_join_the_synthetic_ones_with_the_teachers_targets(
    hub: Hub, dataset: PreparedDataset
) -> None:
    """With `real_rows`, the teacher labels that many rows drawn from the train split
    beside the synthetic ones; each count keys the cache."""
    import pyarrow.parquet as pq

    task = detect_task(dataset.train_statistics)
    spec = spec_of(dataset)
    start = untrained(hub, spec)
    labelled: list[pa.Table] = []

    def teacher(rows: pa.Table) -> np.ndarray:
        labelled.append(rows)
        return np.tile([0.7, 0.3], (rows.num_rows, 1))

    generator = SyntheticGenerator.from_statistics(
        dataset.train_statistics, labeller=lambda rows: np.full(rows.num_rows, task.classes[0])
    )
    common = dict(start=start, generator=generator, dataset_version=VERSION, soft_targets=teacher,
                  labeller_name="constant")  # fmt: skip
    config = PretrainConfig(rows=300, epochs=1, batch_size=64, real_rows=500)
    with_real = pretrain(hub, spec, dataset.folder, task, config=config, **common)  # type: ignore[arg-type]
    assert labelled[-1].num_rows == 800
    train_values = set(pq.read_table(dataset.folder / "train")["a"].to_pylist())
    from_train = [v for v in labelled[-1]["a"].to_pylist() if v in train_values]
    assert len(from_train) >= 500  # the drawn rows carry the train split's values
    synthetic_only = pretrain(hub, spec, dataset.folder, task, config=replace(config, real_rows=0),
                              **common)  # type: ignore[arg-type]  # fmt: skip
    assert labelled[-1].num_rows == 300
    assert synthetic_only != with_real
    with pytest.raises(InvalidArgument, match="real_rows"):
        PretrainConfig(real_rows=-1)
