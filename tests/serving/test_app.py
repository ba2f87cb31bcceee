"""The endpoint through FastAPI's TestClient: answers, each kind of bad input, the traffic split."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from ratchet.errors import InvalidArgument
from ratchet.serving import Limits, Route, TrafficSplit, create_app
from ratchet.training.bundle import Bundle

Client = Callable[[FastAPI], Any]
GOOD = {"a": 0.5, "b": -1.0, "color": "red", "city": "7"}


@pytest.fixture
def app(lightgbm: Bundle) -> FastAPI:
    return create_app([Route("churn@1", lightgbm)], limits=Limits(max_records=5, max_bytes=400))


def test_one_record_and_a_list(client: Client, app: FastAPI, lightgbm: Bundle) -> None:
    http = client(app)
    one = http.post("/predict", json=GOOD)
    assert one.status_code == 200 and one.headers["X-Model-Version"] == "churn@1"
    [expected] = lightgbm.predict_records([GOOD])
    body = one.json()
    assert body["model"] == "churn@1"
    assert body["probabilities"] == pytest.approx(dict(zip(("0", "1"), expected, strict=True)))
    assert body["prediction"] == ("1" if expected[1] > 0.5 else "0")
    records = [GOOD, {**GOOD, "a": -2.0, "color": "blue"}]
    many = http.post("/predict", json=records).json()
    assert many["model"] == "churn@1"
    got = [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in many["predictions"]]
    np.testing.assert_allclose(got, lightgbm.predict_records(records))
    assert http.post("/predict", json=[]).json() == {"model": "churn@1", "predictions": []}


def test_unseen_categories_and_nulls_are_answered(
    client: Client, app: FastAPI, lightgbm: Bundle
) -> None:
    http = client(app)
    unseen = http.post("/predict", json={**GOOD, "color": "mauve", "city": "nowhere"})
    other = http.post("/predict", json={**GOOD, "color": "teal", "city": "elsewhere"})
    assert unseen.status_code == other.status_code == 200
    # every unseen value lands in the one out-of-vocabulary bucket
    assert unseen.json()["probabilities"] == other.json()["probabilities"]
    missing = {"a": None, "b": None, "color": None, "city": None}
    answer = http.post("/predict", json=missing)
    assert answer.status_code == 200
    [expected] = lightgbm.predict_records([missing])
    assert answer.json()["probabilities"]["1"] == pytest.approx(expected[1])


BAD_BODIES = [
    ("missing field", {k: v for k, v in GOOD.items() if k != "a"}, "a", "missing"),
    ("number as text", {**GOOD, "b": "1.5"}, "b", "float_type"),
    ("boolean for a number", {**GOOD, "a": True}, "a", "float_type"),
    ("number for a category", {**GOOD, "city": 7}, "city", "string_type"),
    ("NaN", '{"a": NaN, "b": 1, "color": "red", "city": "7"}', "a", "finite_number"),
    ("infinity", '{"a": 1, "b": -Infinity, "color": "red", "city": "7"}', "b", "finite_number"),
    ("too many records", [GOOD] * 6, None, "too_long"),
    ("not an object", '"hello"', None, "model_attributes_type"),
    ("not JSON", '{"a": 1,', None, "json_invalid"),
]


@pytest.mark.parametrize(
    ("case", "body", "field", "kind"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_bad_input_is_422_naming_the_field(
    client: Client, app: FastAPI, case: str, body: Any, field: str | None, kind: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    answer = client(app).post(
        "/predict", content=content, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["detail"]
    assert detail["type"] == kind
    assert detail.get("field") == field
    if field is not None:
        assert detail["loc"] == ["body", field]


def test_a_bad_record_in_a_list_is_named_by_index(client: Client, app: FastAPI) -> None:
    answer = client(app).post("/predict", json=[GOOD, {**GOOD, "color": None, "b": "x"}])
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert (detail["record"], detail["field"], detail["loc"]) == (1, "b", ["body", 1, "b"])


def test_a_body_over_the_byte_limit_is_413(client: Client, app: FastAPI) -> None:
    http = client(app)
    big = json.dumps({**GOOD, "padding": "x" * 500})
    answer = http.post("/predict", content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit counts what arrives
        yield big[:200].encode()
        yield big[200:].encode()

    chunked = http.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_health_model_and_openapi(client: Client, app: FastAPI) -> None:
    http = client(app)
    assert http.get("/health").json() == {"status": "ok", "models": ["churn@1"]}
    model = http.get("/model").json()
    assert model["signature"]["inputs"][0] == {"name": "a", "type": "number"}
    assert model["limits"] == {"max_records": 5, "max_bytes": 400}
    [route] = model["routes"]
    assert route["model"] == "churn@1" and route["framework"] == "lightgbm"
    assert route["share"] == 1.0 and "test_loss" in route["metrics"]
    schema = http.get("/openapi.json").json()
    record = schema["components"]["schemas"]["Record"]
    assert record["required"] == ["a", "b", "color", "city"]
    assert "out-of-vocabulary" in record["properties"]["color"]["description"]
    assert http.get("/docs").status_code == 200


def test_the_traffic_split_follows_the_weights(
    client: Client, lightgbm: Bundle, mlp: Bundle
) -> None:
    app = create_app([Route("churn@1", lightgbm, 0.8), Route("churn@2", mlp, 0.2)], seed=7)
    http = client(app)
    answered = Counter(http.post("/predict", json=GOOD).json()["model"] for _ in range(1000))
    assert 0.15 < answered["churn@2"] / 1000 < 0.25, answered
    # one request id always reaches one version, and says so
    for request_id in ("alice", "bob", "carol"):
        seen = {
            http.post("/predict", json=GOOD, headers={"X-Request-ID": request_id}).headers[
                "X-Model-Version"
            ]
            for _ in range(5)
        }
        assert len(seen) == 1


def test_the_split_by_request_id_is_deterministic_and_weighted(
    lightgbm: Bundle, mlp: Bundle
) -> None:
    routes = [Route("a", lightgbm, 9), Route("b", mlp, 1)]
    split = TrafficSplit(routes)
    picks = [split.pick(f"request-{i}").name for i in range(20_000)]
    assert abs(picks.count("b") / 20_000 - 0.1) < 0.01
    assert [TrafficSplit(routes).pick(f"request-{i}").name for i in range(100)] == picks[:100]
    seeded = [TrafficSplit(routes, seed=3).pick().name for _ in range(50)]
    assert seeded == [TrafficSplit(routes, seed=3).pick().name for _ in range(50)]
    with pytest.raises(InvalidArgument, match="the weight of b must be > 0"):
        TrafficSplit([Route("a", lightgbm), Route("b", mlp, 0.0)])
    with pytest.raises(InvalidArgument, match="nothing to serve"):
        TrafficSplit([])


def test_a_split_needs_one_signature(lightgbm: Bundle, regression: Bundle) -> None:
    with pytest.raises(InvalidArgument, match="read different fields"):
        create_app([Route("churn@1", lightgbm), Route("price@1", regression)])
    with pytest.raises(InvalidArgument, match="at least 1"):
        create_app([Route("churn@1", lightgbm)], limits=Limits(max_records=0))


def test_regression_answers_a_value(client: Client, regression: Bundle) -> None:
    record = {"b": 0.1, "color": "red", "city": "3"}
    answer = client(create_app([Route("price@1", regression)])).post("/predict", json=record)
    assert answer.json()["prediction"] == pytest.approx(regression.predict_records([record])[0])
    assert "probabilities" not in answer.json()


def test_ratchet_errors_while_predicting_map_to_statuses(
    client: Client, lightgbm: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(table: Any) -> Any:
        raise InvalidArgument("the transform refuses this")

    monkeypatch.setattr(lightgbm, "predict_table", refuse)
    answer = client(create_app([Route("churn@1", lightgbm)])).post("/predict", json=GOOD)
    assert (answer.status_code, answer.json()) == (422, {"detail": "the transform refuses this"})
