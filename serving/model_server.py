"""The packaged model behind SageMaker's container contract: `GET /ping`, `POST /invocations` (port 8080).

The bodies are the SageMaker scorer's (serving.ranking.scorer): `{"columns": [...], "data": [[...]]}`
(pandas split orient) in, `{"predictions": [...]}` out. Rows carry the model's feature columns, or
`user_id`, `item_id` and the online features, from which the model computes the source columns itself.
The model loads once, in the background at start-up: /ping answers 503 (saying why) until it has, as
SageMaker polls it before it sends traffic. Run it with `fitrec serve-model`.
"""

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import Response

from platform_api.errors import ERROR_SCHEMA, ApiError, install_error_handlers
from serving.config import ModelServerSettings
from serving.ranking.scorer import CONTENT_TYPE, decode_frame, encode_predictions

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 6 * 1024 * 1024  # the payload limit of SageMaker's real-time endpoints
ID_COLUMNS = {"user_id", "item_id"}


class ModelSlot:
    """The model once it has loaded (None before, or when it failed) and why it is not there."""

    def __init__(self) -> None:
        self.model: Any = None
        self.version: str | None = None
        self.problem: str | None = "the model is still loading"

    def load(self, settings: ModelServerSettings) -> None:
        """Load the configured model (blocking); a failure is kept in `problem`, never raised."""
        uri = settings.resolved_model_uri
        try:
            import mlflow

            location, version = resolve_model_uri(uri, tracking_uri=settings.tracking_uri)
            model = mlflow.pyfunc.load_model(location).unwrap_python_model()
        except Exception as exc:  # noqa: BLE001 - /ping reports it; the container stays up to say why
            self.problem = f"model {uri} failed to load: {exc}"
            log.exception("%s", self.problem)
            return
        self.model, self.version, self.problem = model, version, None
        log.info("model %s (version %s) loaded", uri, version)


def resolve_model_uri(uri: str, *, tracking_uri: str) -> tuple[str, str | None]:
    """A loadable location and the registry version: models:/<name>@<alias> and models:/<name>/<version> are
    resolved through `tracking_uri` (no process-wide tracking URI is set); anything else is loaded as given."""
    if not uri.startswith("models:/"):
        return uri, None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name, at, alias = uri.removeprefix("models:/").partition("@")
    if at:
        version = str(client.get_model_version_by_alias(name, alias).version)
    else:
        name, _, version = name.rpartition("/")
        if not name or not version.isdigit():
            raise ValueError(f"{uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
    return client.get_model_version_download_uri(name, version), version


def missing_columns(model: Any, columns: set[str]) -> list[str]:
    """What the model needs that the request lacks: its features, or with user_id and item_id only the
    online features (it computes the source columns from the pair)."""
    needed = model.online_features if columns >= ID_COLUMNS else model.feature_names
    return [c for c in needed if c not in columns]


async def _read_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: ModelServerSettings | None = None) -> FastAPI:
    settings = settings or ModelServerSettings()
    slot = ModelSlot()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=slot.load, args=(settings,), daemon=True, name="fitrec-model-load").start()
        yield

    app = FastAPI(
        title="fitrec model server",
        version="0.1.0",
        summary="The packaged recommender behind SageMaker's container contract.",
        lifespan=lifespan,
    )
    app.state.model_slot = slot
    install_error_handlers(app)

    def loaded() -> Any:
        if slot.model is None:
            raise ApiError(503, f"the model is not loaded: {slot.problem}")
        return slot.model

    @app.get("/ping", responses={503: ERROR_SCHEMA})
    async def ping() -> dict[str, str | None]:
        """200 once the model has loaded (SageMaker's health check), else 503 saying why."""
        loaded()
        return {"status": "ok", "model_uri": settings.resolved_model_uri, "version": slot.version}

    @app.post("/invocations", responses={400: ERROR_SCHEMA, 413: ERROR_SCHEMA, 415: ERROR_SCHEMA, 422: ERROR_SCHEMA})
    async def invocations(request: Request) -> Response:
        """Scores of candidate rows: {"columns", "data"} (pandas split orient) in, {"predictions"} out."""
        model = loaded()
        content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != CONTENT_TYPE:
            raise ApiError(415, f"Content-Type must be {CONTENT_TYPE}")
        try:
            frame = decode_frame(await _read_body(request))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        missing = missing_columns(model, set(frame.columns))
        if missing:
            raise ApiError(422, f"the rows lack the model's columns: {missing}", details={"missing": missing})
        scores = await anyio.to_thread.run_sync(model.predict, None, frame)
        return Response(encode_predictions(scores), media_type=CONTENT_TYPE)

    return app
