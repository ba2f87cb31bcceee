"""The dashboard's FastAPI app: read-only pages over the stores a `Config` names.

Owns `create_app`: the routes (`/`, `/models/{name}`, `/lineage/{artifact_id}`,
`/experiments`, `/experiments/{name}`), each also JSON at `/api/...` or with
`?format=json`; opening the metadata store per request (without migrating: the
CLI opened it once, migrating, before serving) and closing it after; and the
mapping of ratchet's errors to HTTP statuses with a one-line message (404 for
an unknown model, artifact or experiment). What pages hold is `view`'s, their
HTML `markup`'s; running the server is `ratchet.cli.dashboard`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html import escape
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ratchet.artifacts import ArtifactStore
from ratchet.config import Config
from ratchet.dashboard import markup, view
from ratchet.errors import FailedPrecondition, InvalidArgument, NotFound, RatchetError, StoreError
from ratchet.metadata import MetadataStore
from ratchet.registry import Registry

_STATUS = ((NotFound, 404), (InvalidArgument, 400), (FailedPrecondition, 409), (StoreError, 503))
FORMATS = ("html", "json")
Format = Annotated[str, Query(alias="format", description="html (default) or json.")]
Depth = Annotated[int, Query(ge=0, le=20, description="Hops to follow in each direction.")]


def jsonable(value: Any) -> Any:
    """`value` with NaN and infinities as null, which JSON has no other way to say."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.query_params.get("format") == "json"


def create_app(config: Config) -> FastAPI:
    """The dashboard over the stores `config` names, which must exist already."""
    artifacts = ArtifactStore.from_config(config)
    # No docs pages: Swagger UI loads its scripts from a CDN, and the dashboard uses none.
    app = FastAPI(
        title="ratchet dashboard",
        description="Read-only views of the metadata store.",
        docs_url=None,
        redoc_url=None,
    )

    @contextmanager
    def opened() -> Iterator[MetadataStore]:
        with MetadataStore(config.db_url, migrate=False) as store:
            yield store

    def answer(
        request: Request, fmt: str, data: dict[str, Any], render: Callable[[dict[str, Any]], str]
    ) -> Response:
        if fmt not in FORMATS:
            raise InvalidArgument(f"format must be html or json, not {fmt!r}")
        if _wants_json(request):
            return JSONResponse(jsonable(data))
        return HTMLResponse(render(data))

    # Sync handlers on purpose: the store's calls block, so FastAPI runs them in its threads.
    @app.get("/", response_class=HTMLResponse, summary="Models, passes, datasets, pipelines.")
    @app.get("/api/overview", summary="The overview as JSON.")
    def overview(request: Request, fmt: Format = "html") -> Response:
        with opened() as store:
            data = view.overview(Registry(store, artifacts))
        return answer(request, fmt, data, markup.overview)

    @app.get("/models/{name}", response_class=HTMLResponse, summary="One registered model.")
    @app.get("/api/models/{name}", summary="One registered model as JSON.")
    def model(request: Request, name: str, fmt: Format = "html") -> Response:
        with opened() as store:
            data = view.model(Registry(store, artifacts), name)
        return answer(request, fmt, data, markup.model)

    @app.get(
        "/lineage/{artifact_id}", response_class=HTMLResponse, summary="An artifact's lineage."
    )
    @app.get("/api/lineage/{artifact_id}", summary="An artifact's lineage as JSON.")
    def lineage(
        request: Request, artifact_id: str, fmt: Format = "html", depth: Depth = 4
    ) -> Response:
        if not artifact_id.isdigit():
            raise NotFound(f"no artifact with id {artifact_id!r}: ids are whole numbers")
        with opened() as store:
            data = view.lineage(store, int(artifact_id), depth=depth)
        return answer(request, fmt, data, markup.lineage)

    @app.get("/experiments", response_class=HTMLResponse, summary="Tracking experiments.")
    @app.get("/api/experiments", summary="Tracking experiments as JSON.")
    def experiments(request: Request, fmt: Format = "html") -> Response:
        with opened() as store:
            data = view.experiments(store)
        return answer(request, fmt, data, markup.experiments)

    @app.get("/experiments/{name}", response_class=HTMLResponse, summary="One experiment's runs.")
    @app.get("/api/experiments/{name}", summary="One experiment's runs as JSON.")
    def experiment(request: Request, name: str, fmt: Format = "html") -> Response:
        with opened() as store:
            data = view.experiment(store, name)
        return answer(request, fmt, data, markup.experiment)

    async def ratchet_error(request: Request, exc: Exception) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=status)
        body = f"<p>{escape(message)}</p>"
        return HTMLResponse(markup.page("not found" if status == 404 else "error", body,
                                        json_href=f"{request.url.path}?format=json"),
                            status_code=status)  # fmt: skip

    app.add_exception_handler(RatchetError, ratchet_error)
    return app
