"""The input guard's pure parts, and that a bodiless GET passes through it untouched (issue 7, item 12)."""

import json
from typing import Any

import anyio
import pytest

from platform_api.boundary import InputGuard, body_problem, json_escape_problem

pytestmark = pytest.mark.robustness


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (r'{"a": "plain"}', None),
        (r'{"a": "caf\u00e9 \ud83d\udcaa"}', None),  # an escaped character and a surrogate pair
        (r'{"a": "C:\\u0000"}', None),  # an escaped backslash, then the text u0000
        (r'{"a": "\u0000"}', "NUL"),
        (r'{"a": "\\\u0000"}', "NUL"),  # an escaped backslash, then a real \u0000 escape
        (r'{"a": "\ud800"}', "unpaired"),
        (r'{"a": "\udc00\ud800"}', "unpaired"),  # low before high is no pair
        (r'{"a": "\ud83d\\udcaa"}', "unpaired"),  # the low half is text, not an escape
        (r'{"a": "\ud83d\ud83d\udcaa"}', "unpaired"),
        (r'{"a": "x\uD800"}', "unpaired"),  # hex digits in either case
    ],
)
def test_json_escapes(text: str, problem: str | None) -> None:
    found = json_escape_problem(text.encode())
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("body", "content_type", "refused"),
    [
        (b'{"a": "\xed\xa0\x80"}', None, True),  # a UTF-8-encoded surrogate; json.loads would accept it
        (b'{"a": "\xc3\xa9"}', b"application/json; charset=utf-8", False),
        (b'{"a": "\x00"}', b"application/vnd.api+json", True),
        (b"a=%00", b"application/x-www-form-urlencoded", True),
        (b"a=%C3%A9", b"application/x-www-form-urlencoded", False),
        (b"\x00\xff", b"application/octet-stream", False),  # bytes to the app: only the size cap applies
        (b"\x00", b"text/plain", True),
    ],
)
def test_body_problems(body: bytes, content_type: bytes | None, refused: bool) -> None:
    assert (body_problem(body, content_type) is not None) is refused


def run(guard: InputGuard, scope: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(guard, scope, receive, send)
    return sent


def scope(method: str, path: str = "/v1/users/u-1/recommendations", **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": b"k=10", "headers": [], **extra}


def test_a_bodiless_get_reaches_the_app_with_the_servers_own_receive() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(receive)

    async def receive() -> dict[str, Any]:
        raise AssertionError("the guard must not read a GET's body")

    guard = InputGuard(app, max_upload_bytes=1024)
    assert run(guard, scope("GET"), receive) == [] and seen == [receive]


def test_a_refusal_comes_before_the_app_in_the_error_shape() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a refused request never reaches the app")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"a": "\\u0000"}', "more_body": False}

    guard = InputGuard(app, max_upload_bytes=1024)
    for refused in (scope("GET", query_string=b"q=%00"), scope("GET", path="/v1/plans/\x00"), scope("POST")):
        start, body = run(guard, refused, receive)
        assert start["status"] == 422
        assert json.loads(body["body"])["error"]["code"] == "validation_error"


def test_a_streamed_body_over_the_cap_is_refused_without_reading_the_rest() -> None:
    reads = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never reached")

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 256 * 1024, "more_body": True}  # endless

    start, body = run(InputGuard(app, max_upload_bytes=1024), scope("POST", path="/v1/workouts"), receive)
    assert start["status"] == 413 and json.loads(body["body"])["error"]["code"] == "payload_too_large"
    assert reads == 5  # 1 MiB read, then the first chunk past it
