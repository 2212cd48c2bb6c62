"""Opaque cursors for keyset pagination in a stable order."""

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query

from platform_api.errors import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Offset paging reads and skips every row before the page: deeper than this, use a narrower query.
MAX_OFFSET = 10_000
# Cursors made by encode_cursor are well under this.
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


def encode_cursor(key: list[Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, size: int) -> list[Any] | None:
    """The sort key of the last row of the previous page; 400 for anything not made by encode_cursor."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid cursor", code="invalid_cursor") from exc
    if not isinstance(key, list) or len(key) != size:
        raise ApiError(400, "invalid cursor", code="invalid_cursor")
    return key
