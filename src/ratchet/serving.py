"""The online endpoint: a FastAPI app answering predictions from one or more model versions.

Owns `create_app` (POST /predict for one record or a list, GET /health, GET /model,
FastAPI's OpenAPI schema with a request model generated from the bundle's signature),
the validation of requests against that signature (a field absent, a value of the
wrong type, NaN or an infinity, too many records: HTTP 422 naming the field; a body
over the byte limit: 413), the traffic split between versions (`TrafficSplit`: a
request carrying `X-Request-ID` always reaches the same version, others are drawn at
random; every answer names its version) and `load_model`/`load_routes`, which turn a
registry reference (`churn`, `churn@3`, `churn:champion`) or a bundle folder into what
is served. The app alone maps ratchet's errors to HTTP statuses.

Running the server is the CLI's (`ratchet.cli.serve`, uvicorn); batch prediction is
`ratchet.prediction`. Null values are accepted as missing (imputed as in training) and
unseen categories go to the out-of-vocabulary bucket, as in batch prediction.
"""

from __future__ import annotations

import bisect
import hashlib
import inspect
import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from fastapi import Body, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound, RatchetError
from ratchet.registry import ModelVersion, Registry
from ratchet.training.bundle import MANIFEST, Bundle, load_bundle

# Strict: "3" is not a number and 3 is not a category; NaN and infinities are refused.
_NUMBER = Annotated[float | None, Field(strict=True, allow_inf_nan=False)]
_STRING = Annotated[str | None, Field(strict=True)]
_DESCRIPTIONS = {
    "number": "A finite number; null when missing (imputed as in training).",
    "string": "A category; null or a value unseen in training maps to the out-of-vocabulary id.",
}
_STATUS = ((InvalidArgument, 422), (NotFound, 404), (FailedPrecondition, 409))


@dataclass(frozen=True)
class Route:
    """One model behind the endpoint and its share of the traffic (weights are relative)."""

    name: str  # what answers carry: "churn@3", or a bundle folder's name
    bundle: Bundle
    weight: float = 1.0
    version: ModelVersion | None = None  # its registry record, when it came from the registry


@dataclass(frozen=True)
class Limits:
    max_records: int = 1000  # per request
    max_bytes: int = 1 << 20  # request body


class Prediction(BaseModel):
    prediction: str | float = Field(description="The most likely class, or the value.")
    probabilities: dict[str, float] | None = Field(None, description="Per class.")


class Answer(Prediction):
    model: str = Field(description="The version that answered, e.g. churn@3.")


class Answers(BaseModel):
    model: str = Field(description="The version that answered, e.g. churn@3.")
    predictions: list[Prediction]


class TrafficSplit:
    """Picks a route by weight: by a hash of the request id if given, else at random."""

    def __init__(self, routes: Sequence[Route], *, seed: int | None = None) -> None:
        if not routes:
            raise InvalidArgument("nothing to serve: give at least one model")
        if bad := [r for r in routes if not (math.isfinite(r.weight) and r.weight > 0)]:
            raise InvalidArgument(f"the weight of {bad[0].name} must be > 0, not {bad[0].weight}")
        total = sum(r.weight for r in routes)
        self.routes = tuple(routes)
        self.shares = tuple(r.weight / total for r in routes)
        self._bounds = list(itertools.accumulate(self.shares))
        self._random = random.Random(seed)

    def pick(self, request_id: str | None = None) -> Route:
        if request_id:
            digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
            point = int.from_bytes(digest, "big") / 2**64
        else:
            point = self._random.random()
        index = bisect.bisect_right(self._bounds, point)
        return self.routes[min(index, len(self.routes) - 1)]  # rounding may leave the sum < 1


def is_bundle_path(reference: str) -> bool:
    """A reference naming a folder rather than a registered model (names hold no '/')."""
    return "/" in reference or reference.startswith(".") or Path(reference).is_dir()


def load_model(reference: str, registry: Registry | None) -> Route:
    """A bundle folder, or `name`, `name@3`, `name:alias` from the registry."""
    if is_bundle_path(reference):
        folder = Path(reference)
        if not (folder / MANIFEST).is_file():
            raise NotFound(f"{reference} is not a model bundle folder (no {MANIFEST})")
        return Route(folder.resolve().name, load_bundle(folder))
    if registry is None:
        raise NotFound(f"{reference} is not a bundle folder, and no registry was given")
    bundle, version = registry.load(reference)
    return Route(str(version), bundle, version=version)


def load_routes(weights: Mapping[str, float], registry: Registry | None) -> list[Route]:
    """The routes of a split such as {"churn@3": 0.9, "churn@4": 0.1}."""
    routes = [replace(load_model(ref, registry), weight=w) for ref, w in weights.items()]
    names = [r.name for r in routes]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise InvalidArgument(f"{twice[0]} appears twice in the traffic split")
    return routes


def record_model(inputs: Sequence[Mapping[str, str]]) -> type[BaseModel]:
    """The request model of one record: the signature's fields, under their own names.

    Attributes are f0, f1, ... with the field names as aliases, so any column name works
    (one clashing with a pydantic attribute or not a Python identifier included).
    """
    fields: dict[str, Any] = {
        f"f{i}": (
            _NUMBER if spec["type"] == "number" else _STRING,
            Field(alias=spec["name"], title=spec["name"], description=_DESCRIPTIONS[spec["type"]]),
        )
        for i, spec in enumerate(inputs)
    }
    # Extra fields are ignored: clients often send ids and context along with the features.
    return create_model("Record", __config__=ConfigDict(extra="ignore"), **fields)


def create_app(
    routes: Sequence[Route], *, limits: Limits | None = None, seed: int | None = None
) -> FastAPI:
    """The app serving `routes`, which must share one input signature."""
    limits = limits or Limits()
    if limits.max_records < 1 or limits.max_bytes < 1:
        raise InvalidArgument("max_records and max_bytes must be at least 1")
    split = TrafficSplit(routes, seed=seed)
    inputs = _shared_inputs(routes)
    record = record_model(inputs)
    columns = [
        (f"f{i}", spec["name"], pa.float64() if spec["type"] == "number" else pa.string())
        for i, spec in enumerate(inputs)
    ]
    many = Annotated[list[record], Field(max_length=limits.max_records)]  # type: ignore[valid-type]
    shapes = (record.__name__, f"list[{record.__name__}]")  # how pydantic tags the two shapes

    app = FastAPI(
        title=f"ratchet serving {', '.join(r.name for r in routes)}",
        description="Predictions from raw records; see GET /model for the models behind it.",
    )

    async def predict(body: Any, x_request_id: str | None = None) -> Response:
        # Async on purpose: the model call is short and CPU-bound, and running every
        # prediction on the event loop's one thread spares a thread hop per request and
        # any question of the models' thread safety.
        route = split.pick(x_request_id)
        records = body if isinstance(body, list) else [body]
        answers = _predict(route.bundle, records, columns) if records else []
        content: dict[str, Any] = {"model": route.name}
        if isinstance(body, list):
            content["predictions"] = answers
        else:
            content.update(answers[0])
        headers = {"X-Model-Version": route.name}
        if x_request_id:
            headers["X-Request-ID"] = x_request_id
        return Response(json.dumps(content), media_type="application/json", headers=headers)

    # The body's type exists only now, so the signature FastAPI reads is built here.
    predict.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "body",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[record | many, Body()],
            ),
            inspect.Parameter(
                "x_request_id",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[
                    str | None, Header(description="Requests with one id reach one version.")
                ],
            ),
        ]
    )
    app.post(
        "/predict",
        response_model=Answer | Answers,
        max_body_size=limits.max_bytes,
        summary="Predict one record (an object) or several (a list of objects).",
        responses={413: {"description": f"The body is over {limits.max_bytes} bytes."}},
    )(predict)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": [r.name for r in routes]}

    @app.get("/model")
    async def model() -> dict[str, Any]:
        return {
            "signature": {"inputs": inputs},
            "limits": {"max_records": limits.max_records, "max_bytes": limits.max_bytes},
            "routes": [_describe(r, share) for r, share in zip(routes, split.shares, strict=True)],
        }

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _details(exc, shapes)}, status_code=422)

    async def ratchet_error(request: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(RatchetError, ratchet_error)
    return app


def _shared_inputs(routes: Sequence[Route]) -> list[dict[str, str]]:
    first = routes[0].bundle.inputs
    for route in routes[1:]:
        if sorted(map(str, route.bundle.inputs)) != sorted(map(str, first)):
            raise InvalidArgument(
                f"{route.name} and {routes[0].name} read different fields; the versions of a "
                "traffic split must share one input signature"
            )
    return first


def _predict(
    bundle: Bundle, records: list[Any], columns: list[tuple[str, str, pa.DataType]]
) -> list[dict[str, Any]]:
    """One Arrow table for the request's records, predicted at once."""
    table = pa.Table.from_arrays(
        [pa.array([getattr(r, attr) for r in records], kind) for attr, _, kind in columns],
        names=[name for _, name, _ in columns],
    )
    values = np.asarray(bundle.predict_table(table), dtype=np.float64)
    task = bundle.task
    if not task.classification:
        return [{"prediction": v} for v in values.reshape(-1).tolist()]
    probabilities = values.reshape(len(records), -1)
    best = probabilities.argmax(axis=1).tolist()
    return [
        {"prediction": task.classes[b], "probabilities": dict(zip(task.classes, row, strict=True))}
        for b, row in zip(best, probabilities.tolist(), strict=True)
    ]


def _describe(route: Route, share: float) -> dict[str, Any]:
    manifest, version = route.bundle.manifest, route.version
    described: dict[str, Any] = {
        "model": route.name,
        "share": share,
        "framework": route.bundle.framework,
        "task": route.bundle.task.to_dict(),
        "outputs": manifest["signature"].get("outputs"),
        "metrics": dict(version.metrics if version else manifest.get("metrics", {})),
    }
    if version is not None:
        described.update(
            name=version.name,
            version=version.version,
            aliases=list(version.aliases),
            labels=dict(version.labels),
            sha256=version.sha256,
        )
    return described


def _details(exc: RequestValidationError, shapes: tuple[str, str]) -> list[dict[str, Any]]:
    """FastAPI's errors without the echoed input (it may hold NaN, which JSON cannot carry),
    keeping only those of the shape the client sent (a record or a list of records) and
    naming the field and, in a list, the record."""
    body = exc.body
    details = []
    for error in exc.errors():
        loc = list(error["loc"])
        if len(loc) > 1 and loc[0] == "body" and loc[1] in shapes:
            # pydantic tried both shapes of the union; the other one's errors are noise.
            if (loc[1] == shapes[1]) != isinstance(body, list):
                continue
            loc = ["body", *loc[2:]]
        message = str(error["msg"])
        if error["type"] == "json_invalid":
            message = f"{message}: {error.get('ctx', {}).get('error', '')}".rstrip(": ")
        detail: dict[str, Any] = {"loc": loc, "type": error["type"], "msg": message}
        if names := [part for part in loc[1:] if isinstance(part, str)]:
            detail["field"] = names[-1]
        if isinstance(body, list) and len(loc) > 1 and isinstance(loc[1], int):
            detail["record"] = loc[1]
        details.append(detail)
    return details
