"""The object-store Protocol and the key rules every implementation enforces."""

import re
from collections.abc import Iterator
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class ObjectNotFound(KeyError):
    """No object under that key."""


class ObjectStore(Protocol):
    def put(self, key: str, data: BinaryIO, *, content_type: str) -> int:
        """Store the stream under `key` (replacing any object there); returns the bytes written."""
        ...

    def get(self, key: str) -> bytes: ...

    def iter_chunks(self, key: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error."""
        ...


def check_key(key: str) -> str:
    """Keys are relative slash-separated names; no '..', no absolute paths, no empty parts."""
    if len(key) > 512 or not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key
