"""The input guard: every text input is Unicode the database can store, every body is bounded.

PostgreSQL refuses NUL in text and psycopg cannot encode a lone surrogate, so either one
turned any route that stores or looks up a string into a 500 (SQLite stores both). Rather
than a validator on every field, one pure ASGI middleware (not BaseHTTPMiddleware: no task
per request) checks each request before routing and answers 422 (413 for size) in the one
error shape:

- the decoded path and the query string: no NUL (percent-decoding replaces invalid UTF-8,
  so no surrogate can come out of them);
- header values: no NUL (RFC 9110 forbids it; h11 refuses it, other servers may not);
- a body of POST, PUT, PATCH or DELETE: read whole, and refused with 413 as soon as it passes
  its route class's cap (`body_limit`). A text body (JSON, the default when no type is
  declared, urlencoded, text/*) must be valid UTF-8 without NUL, JSON also without a
  \\u0000 escape or an unpaired \\ud800-\\udfff escape. The app then reads the buffered body;
- multipart: streamed through unchanged (uploads are large); the non-file fields are checked
  as they pass, since files may hold any bytes; capped at the upload limit.

A GET, HEAD or OPTIONS costs one scan of its header values and query string; its body, if
any, is never read (no route of those methods takes one).
"""

import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Path
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_api.errors import ERROR_SCHEMA, error_body, request_id_of
from platform_api.events.router import EVENT_BATCH_BYTES

# Path ids of the platform's rows: uuids (users, workouts, payments, ...) and item ids (plans, content).
RowId = Annotated[str, Path(min_length=1, max_length=64)]
ItemPathId = Annotated[str, Path(min_length=1, max_length=128)]

DEFAULT_BODY_BYTES = 1024 * 1024
# Route classes with a cap other than the default, by path prefix.
BODY_LIMITS: tuple[tuple[str, int], ...] = (("/v1/events", EVENT_BATCH_BYTES),)
# Room for the multipart envelope (boundaries, part headers) around an upload.
MULTIPART_SLACK = 64 * 1024
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
# A \uXXXX escape that is not itself escaped (preceded by an even run of backslashes).
_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")


def body_limit(path: str) -> int:
    return next((limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), DEFAULT_BODY_BYTES)


def json_escape_problem(body: bytes) -> str | None:
    """What is wrong with the \\u escapes of a JSON text: a NUL or a lone surrogate, else None."""
    if b"\\u" not in body:
        return None
    high_end = -1  # end offset of a high surrogate escape still waiting for its low half
    for m in _ESCAPE.finditer(body):
        code = int(m[1], 16)
        paired = m.start() == high_end and m.end() - m.start() == 6
        if high_end >= 0 and not (paired and 0xDC00 <= code <= 0xDFFF):
            return "an unpaired surrogate escape"
        if high_end >= 0:
            high_end = -1
        elif code == 0:
            return "a \\u0000 escape (NUL)"
        elif 0xD800 <= code <= 0xDBFF:
            high_end = m.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return "an unpaired surrogate escape"
    return "an unpaired surrogate escape" if high_end >= 0 else None


def text_problem(data: bytes) -> str | None:
    if b"\x00" in data:
        return "a NUL character"
    try:
        data.decode("utf-8")  # strict: refuses encoded surrogates, which json.loads lets through
    except UnicodeDecodeError:
        return "invalid UTF-8"
    return None


def body_problem(body: bytes, content_type: bytes | None) -> str | None:
    kind = (content_type or b"application/json").split(b";", 1)[0].strip().lower()
    if kind == b"application/x-www-form-urlencoded":
        return "a NUL character" if b"%00" in body else text_problem(body)
    if kind == b"application/json" or kind.endswith(b"+json"):
        return text_problem(body) or json_escape_problem(body)
    if kind.startswith(b"text/"):
        return text_problem(body)
    return None  # other types are bytes to the app: only their size is checked


def _target_problem(scope: Scope) -> str | None:
    if "\x00" in scope["path"]:
        return "the path holds a NUL character"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "the query string holds a NUL character"
    return None


class MultipartFieldCheck:
    """Feeds a multipart body through python-multipart's parser; checks the parts that are not files."""

    def __init__(self, boundary: bytes) -> None:
        self.problem: str | None = None
        self._header = bytearray()
        self._is_file = False
        self._field = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    def _begin(self) -> None:
        self._is_file = False
        self._field.clear()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_end(self) -> None:
        if b"\x00" in self._header:
            self.problem = self.problem or "a part header holds a NUL character"
        _, params = parse_options_header(bytes(self._header))
        self._is_file = self._is_file or b"filename" in params
        self._header.clear()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file:
            self._field += data[start:end]

    def _end(self) -> None:
        if not self._is_file:
            problem = text_problem(bytes(self._field))
            self.problem = self.problem or (f"a form field holds {problem}" if problem else None)

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except Exception as exc:  # noqa: BLE001 - python-multipart raises several types for a malformed body
            raise HTTPException(422, f"malformed multipart body: {exc}") from exc
        if self.problem:
            raise HTTPException(422, f"body: {self.problem}")


class InputGuard:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int) -> None:
        self.app = app
        self.upload_limit = max_upload_bytes + MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _target_problem(scope)
        content_type = length = None
        for name, value in scope["headers"]:
            if b"\x00" in value:
                problem = problem or f"the {name.decode('latin-1')} header holds a NUL character"
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if problem:
            await reject(scope, send, 422, problem)
        elif scope["method"] in BODYLESS:
            await self.app(scope, receive, send)
        elif content_type is not None and content_type.lower().startswith(b"multipart/"):
            await self.app(scope, self._checked_multipart(receive, content_type), send)
        else:
            await self._buffered(scope, receive, send, content_type, length)

    async def _buffered(
        self, scope: Scope, receive: Receive, send: Send, content_type: bytes | None, length: bytes | None
    ) -> None:
        limit = body_limit(scope["path"])
        if length is not None and length.isdigit() and int(length) > limit:
            await reject(scope, send, 413, f"the body is larger than {limit} bytes")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body: nobody to answer
            body += message.get("body", b"")
            if len(body) > limit:  # also without a Content-Length: counted as it streams
                await reject(scope, send, 413, f"the body is larger than {limit} bytes")
                return
            if not message.get("more_body", False):
                break
        problem = body_problem(bytes(body), content_type)
        if problem:
            await reject(scope, send, 422, f"body: {problem}")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: waits for the disconnect, as the server would
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _checked_multipart(self, receive: Receive, content_type: bytes) -> Callable[[], Awaitable[Message]]:
        """The app's receive, checking the body as the app reads it (errors surface in the app as HTTPException)."""
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        check = MultipartFieldCheck(boundary) if boundary else None
        seen = 0

        async def checked() -> Message:
            nonlocal seen
            message = await receive()
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.upload_limit:
                raise HTTPException(413, f"the body is larger than {self.upload_limit} bytes")
            if check is not None and chunk:
                check.feed(chunk)
            return message

        return checked


async def reject(scope: Scope, send: Send, status: int, message: str) -> None:
    body = json.dumps(error_body(status, message, request_id=request_id_of(scope))).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def document_guard(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to an OpenAPI document what the guard (and body parsing) can answer on each operation."""
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            # Every 422 comes in the one error shape, not FastAPI's default HTTPValidationError.
            responses["422"] = {**ERROR_SCHEMA, "description": "Invalid input (NUL, unpaired surrogates, bad fields)"}
            if method.upper() not in BODYLESS:
                responses.setdefault("413", {**ERROR_SCHEMA, "description": "Request body too large"})
            if "requestBody" in operation:
                responses.setdefault("400", {**ERROR_SCHEMA, "description": "The body could not be parsed"})
    return schema


def install_input_guard(app: FastAPI, *, max_upload_bytes: int) -> None:
    """Install the guard (call before install_error_handlers, so its answers carry the request id)."""
    app.add_middleware(InputGuard, max_upload_bytes=max_upload_bytes)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_guard(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
