"""Object storage in an S3 bucket (or any S3-compatible service) through boto3."""

from collections.abc import Iterator
from typing import Any, BinaryIO

from platform_api.storage.base import CHUNK, ObjectNotFound, check_key


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")


class S3ObjectStore:
    def __init__(self, *, bucket: str, prefix: str = "", client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: BinaryIO, *, content_type: str) -> int:
        start = data.tell()
        size = data.seek(0, 2) - start
        data.seek(start)
        # upload_fileobj switches to multipart uploads for large media by itself.
        self.client.upload_fileobj(data, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type})
        return size

    def _get_object(self, key: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            obj: dict[str, Any] = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                raise ObjectNotFound(key) from exc
            raise
        return obj

    def get(self, key: str) -> bytes:
        body: bytes = self._get_object(key)["Body"].read()
        return body

    def iter_chunks(self, key: str, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        body = self._get_object(key)["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
