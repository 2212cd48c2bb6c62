"""Choose the object store by the URL scheme: file:///path or s3://bucket/prefix."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from platform_api.storage.base import ObjectStore
from platform_api.storage.local import LocalObjectStore
from platform_api.storage.s3 import S3ObjectStore


def open_object_store(url: str, *, s3_endpoint_url: str | None = None) -> ObjectStore:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalObjectStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"S3 storage URL needs a bucket: {url!r}")
        import boto3  # imported on use: the embedded default never needs it

        client = boto3.client("s3", endpoint_url=s3_endpoint_url)
        return S3ObjectStore(bucket=parts.netloc, prefix=parts.path, client=client)
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r}: use file:///path or s3://bucket/prefix")
