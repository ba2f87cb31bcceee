from __future__ import annotations

import optuna
import pytest

from ratchet.errors import InvalidArgument
from ratchet.tuning.space import Metric, Parameter, StudyConfig

SPACE = {
    "parameters": {
        "learning_rate": {"type": "double", "min": 1e-4, "max": 1e-1, "scale": "log"},
        "layers": {"type": "integer", "min": 1, "max": 4},
        "batch_size": {"type": "discrete", "values": [64, 128, 256]},
        "optimizer": {
            "type": "categorical",
            "values": ["adam", "sgd"],
            "children": {"sgd": {"momentum": {"type": "double", "min": 0.0, "max": 0.99}}},
        },
    },
    "metrics": [{"name": "validation_loss", "goal": "minimize"}],
    "algorithm": "tpe",
}


def test_a_config_round_trips_through_its_dict_form() -> None:
    config = StudyConfig.from_dict(SPACE)
    assert StudyConfig.from_dict(config.to_dict()) == config
    assert config.directions == ["minimize"]


def test_children_are_suggested_only_under_their_parents_value() -> None:
    config = StudyConfig.from_dict(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(30):
        values = config.suggest(study.ask())
        seen.append(values)
        assert ("momentum" in values) == (values["optimizer"] == "sgd")
        assert 1e-4 <= float(values["learning_rate"]) <= 1e-1
        assert values["batch_size"] in (64, 128, 256)
    assert {v["optimizer"] for v in seen} == {"adam", "sgd"}


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"type": "double", "min": 2, "max": 1}, "min 2 is above max 1"),
        ({"type": "double", "min": 0, "max": 1, "scale": "log"}, "log scale needs min > 0"),
        ({"type": "double", "min": -1, "max": 1, "scale": "log"}, "log scale needs min > 0"),
        ({"type": "categorical", "values": []}, "at least one value"),
        ({"type": "discrete", "values": ["a"]}, "discrete values must be numbers"),
        ({"type": "integer", "min": 0.5, "max": 3}, "whole numbers"),
        ({"type": "double", "max": 3}, "give min and max"),
        ({"type": "float", "min": 0, "max": 1}, "type must be one of"),
        ({"type": "double", "min": 0, "max": 1, "step": 0.1}, "unknown key 'step'"),
        ({"type": "categorical", "values": ["a"], "children": {"b": {}}}, "children hang on"),
    ],
)
def test_invalid_spaces_are_refused_when_built(parameter: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        StudyConfig.from_dict({"parameters": {"p": parameter}})


def test_invalid_studies_are_refused_when_built() -> None:
    good = Parameter("x", "double", low=0, high=1)
    with pytest.raises(InvalidArgument, match="at least one parameter"):
        StudyConfig(parameters=())
    with pytest.raises(InvalidArgument, match="algorithm must be one of"):
        StudyConfig(parameters=(good,), algorithm="bayes")
    with pytest.raises(InvalidArgument, match="goal must be minimize or maximize"):
        Metric("loss", "lower")
    with pytest.raises(InvalidArgument, match="'x' is defined twice"):
        StudyConfig(parameters=(good, good))
    with pytest.raises(InvalidArgument, match="grid algorithm cannot search conditional"):
        StudyConfig.from_dict({**SPACE, "algorithm": "grid"})
    with pytest.raises(InvalidArgument, match="needs a 'parameters' mapping"):
        StudyConfig.from_dict({"params": {}})


def test_the_grid_covers_every_value() -> None:
    config = StudyConfig(
        parameters=(
            Parameter("lr", "double", low=1e-3, high=1e-1, scale="log"),
            Parameter("layers", "integer", low=1, high=3),
        ),
        algorithm="grid",
        grid_points=3,
    )
    grid = config.grid()
    assert grid["layers"] == [1, 2, 3]
    assert grid["lr"] == pytest.approx([1e-3, 1e-2, 1e-1])
