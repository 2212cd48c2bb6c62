"""The one error shape: {"error": {"code", "message", "status", "request_id"}} for every failure.

Every request has an id (a valid incoming X-Request-ID, or a new one), returned as the
X-Request-ID header and in error bodies, and logged with every 5xx. Errors of the database
connection (down, refusing, timing out) are a 503 with Retry-After, mapped here only.
"""

import json
import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{8,128}")
DB_RETRY_AFTER_S = 5

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raise from services and routes; rendered in the one error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or STATUS_CODES.get(status, "error")
        self.details = details
        self.headers = headers


def error_body(
    status: int, message: str, code: str | None = None, details: Any = None, request_id: str | None = None
) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code or STATUS_CODES.get(status, "error"), "message": message, "status": status}
    if details is not None:
        err["details"] = details
    if request_id is not None:
        err["request_id"] = request_id
    return {"error": err}


def request_id_of(scope: Scope) -> str | None:
    rid: str | None = scope.get("state", {}).get("request_id")
    return rid


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: it would cost the cached path a task per request).

    Gives each request its id and turns an unhandled exception into the one error shape
    (500, logged with its traceback and the id) instead of a plain-text answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER), None)
        rid = raw.decode() if raw is not None and VALID_REQUEST_ID.fullmatch(raw) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (REQUEST_ID_HEADER, rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s [request_id=%s]", scope["method"], scope["path"], rid)
            if started:
                raise
            body = json.dumps(error_body(500, "internal error", request_id=rid)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send_with_id({"type": "http.response.start", "status": 500, "headers": headers})
            await send_with_id({"type": "http.response.body", "body": body})


def is_database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or used right now (as opposed to a bad statement)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# OpenAPI description of the error shape, reused by routers' `responses=`.
ERROR_SCHEMA = {
    "description": "Error",
    "content": {
        "application/json": {"example": {"error": {"code": "not_found", "message": "user not found", "status": 404}}}
    },
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(RequestIdMiddleware)

    def render(request: Request, status: int, message: str, code: str | None = None, **kw: Any) -> JSONResponse:
        rid = request_id_of(request.scope)
        if status >= 500:
            log.warning("%s %s: %d %s [request_id=%s]", request.method, request.url.path, status, message, rid)
        headers = kw.pop("headers", None)
        return JSONResponse(error_body(status, message, code, request_id=rid, **kw), status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return render(request, exc.status, exc.message, exc.code, details=exc.details, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return render(request, exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        first = details[0] if details else {"loc": "", "msg": "invalid request"}
        message = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
        return render(request, 422, message, details=details)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        # Reached only from middleware outside RequestIdMiddleware (Starlette's outermost layer).
        return JSONResponse(error_body(500, "internal error", request_id=request_id_of(request.scope)), 500)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_database_unavailable(exc):
            raise exc  # a bug, not an outage: RequestIdMiddleware answers 500 and logs the traceback
        log.warning("database unavailable [request_id=%s]: %s", request_id_of(request.scope), exc)
        return render(
            request,
            503,
            "the database is unavailable; try again shortly",
            "database_unavailable",
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )
