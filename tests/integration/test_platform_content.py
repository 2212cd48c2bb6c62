"""Content on SQLite and PostgreSQL: trainers create items, upload media (413 over the size limit,
415 for a type sniffed from the bytes), pending → ready with content.ready, premium gating, and the
object-store contract on a local folder and on S3 (moto's server)."""

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_platform_support as support
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from test_platform_support import error_code, events_of, make_account, make_app, make_settings

from platform_api.catalogue.service import seed_catalogue
from platform_api.runtime import Platform, open_platform
from platform_api.storage.base import ObjectNotFound, ObjectStore
from platform_api.storage.factory import open_object_store

# Fixtures shared by the platform tests.
client = support.client
platform = support.platform

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40  # ~10 KB, sniffed as video/mp4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000
PDF = b"%PDF-1.4\n" + b"1 0 obj\n" * 200


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


def s3_store(endpoint: str, bucket: str) -> ObjectStore:
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return open_object_store(f"s3://{bucket}/media", s3_endpoint_url=endpoint)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_object_store((tmp_path / "objects").as_uri())
    request.getfixturevalue("aws_env")
    return s3_store(request.getfixturevalue("s3_endpoint"), f"contract-{uuid.uuid4().hex[:8]}")


# --- the object-store contract, on every implementation ---


def test_store_contract(store: ObjectStore) -> None:
    assert not store.exists("a/b.bin")
    assert store.put("a/b.bin", io.BytesIO(b"first"), content_type="application/octet-stream") == 5
    assert store.exists("a/b.bin") and store.get("a/b.bin") == b"first"
    store.put("a/b.bin", io.BytesIO(MP4), content_type="video/mp4")  # overwrite
    assert b"".join(store.iter_chunks("a/b.bin", chunk_size=1000)) == MP4
    store.delete("a/b.bin")
    store.delete("a/b.bin")  # deleting a missing key is fine
    assert not store.exists("a/b.bin")
    with pytest.raises(ObjectNotFound):
        store.get("a/b.bin")
    with pytest.raises(ObjectNotFound):
        next(iter(store.iter_chunks("missing")))
    for bad in ("../escape", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            store.put(bad, io.BytesIO(b"x"), content_type="text/plain")


# --- content over HTTP ---


def create_video(client: TestClient, headers: dict[str, str], **extra: object) -> dict[str, object]:
    body = {
        "kind": "video",
        "title": "Kettlebell swing",
        "category": "strength",
        "level": "beginner",
        "equipment": ["kettlebells"],
        "duration_min": 8,
        **extra,
    }
    response = client.post("/v1/content", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def upload(
    client: TestClient,
    item_id: object,
    headers: dict[str, str],
    data: bytes,
    name: str = "clip.mp4",
    content_type: str = "video/mp4",
) -> object:
    return client.put(f"/v1/content/{item_id}/media", files={"file": (name, data, content_type)}, headers=headers)


def test_trainer_content_upload_validation_and_ready(platform: Platform, client: TestClient) -> None:
    trainer, user = make_account(platform, role="trainer"), make_account(platform)
    assert client.post("/v1/content", json={"kind": "video"}, headers=user.headers).status_code == 403
    item = create_video(client, trainer.headers)
    assert item["status"] == "pending" and item["source"] == "trainer" and item["media"] is None
    # Pending items are their trainer's alone.
    assert client.get(f"/v1/content/{item['id']}", headers=user.headers).status_code == 404
    assert client.get("/v1/content", params={"trainer_id": trainer.id}, headers=user.headers).json()["count"] == 0
    assert client.get("/v1/content", params={"mine": True}, headers=trainer.headers).json()["count"] == 1

    # The type comes from the bytes: a PNG named clip.mp4 with a video/mp4 header is still a PNG.
    wrong = upload(client, item["id"], trainer.headers, PNG)
    assert wrong.status_code == 415 and "image/png" in wrong.json()["error"]["message"]
    unknown = upload(client, item["id"], trainer.headers, b"just some text, not a video" * 10)
    assert unknown.status_code == 415 and error_code(unknown) == "unsupported_media_type"
    too_big = upload(client, item["id"], trainer.headers, MP4 + b"\x00" * (70 * 1024))  # the limit is 64 KiB
    assert too_big.status_code == 413 and error_code(too_big) == "payload_too_large"
    empty = upload(client, item["id"], trainer.headers, b"")
    assert empty.status_code == 422
    assert (
        client.put(
            f"/v1/content/{item['id']}/media", content=MP4, headers={**trainer.headers, "Content-Type": "video/mp4"}
        ).status_code
        == 415
    )  # not multipart
    assert events_of(platform, "content.ready", item_id=str(item["id"])) == []

    ok = upload(client, item["id"], trainer.headers, MP4, name="whatever.bin", content_type="text/plain")
    assert ok.status_code == 200, ok.text
    ready = ok.json()
    assert ready["status"] == "ready" and ready["media"]["content_type"] == "video/mp4"
    assert ready["media"]["bytes"] == len(MP4)
    [event] = events_of(platform, "content.ready", item_id=str(item["id"]))
    assert event.properties == {"kind": "video"} and event.user_id is None
    # Re-uploading replaces the media without announcing the item twice.
    again = upload(client, item["id"], trainer.headers, MP4[:-10])
    assert again.status_code == 200 and again.json()["media"]["bytes"] == len(MP4) - 10
    assert len(events_of(platform, "content.ready", item_id=str(item["id"]))) == 1

    media = client.get(f"/v1/content/{item['id']}/media", headers=user.headers)
    assert media.status_code == 200 and media.content == MP4[:-10]
    assert media.headers["content-type"] == "video/mp4"
    listed = client.get("/v1/content", params={"trainer_id": trainer.id}, headers=user.headers).json()
    assert [c["id"] for c in listed["data"]] == [item["id"]]


def test_upload_without_content_length_is_limited(platform: Platform, client: TestClient) -> None:
    trainer = make_account(platform, role="trainer")
    item = create_video(client, trainer.headers)
    boundary = "fitrecboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
            f"Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + MP4
        + b"\x00" * (200 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks() -> Iterator[bytes]:  # a streamed body: no Content-Length header at all
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = client.put(
        f"/v1/content/{item['id']}/media",
        content=chunks(),
        headers={**trainer.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413, response.text


def test_catalogue_items_are_content_and_premium_needs_entitlement(platform: Platform, client: TestClient) -> None:
    user, admin = make_account(platform), make_account(platform, role="admin")
    listing = client.get("/v1/content", params={"limit": 100}, headers=user.headers).json()
    assert listing["count"] == 930 and len(listing["data"]) == 100 and listing["next_cursor"]
    second = client.get(
        "/v1/content", params={"limit": 100, "cursor": listing["next_cursor"]}, headers=user.headers
    ).json()
    assert listing["data"][-1]["id"] < second["data"][0]["id"]
    free = client.get("/v1/content", params={"premium": False, "kind": "article"}, headers=user.headers).json()
    assert client.get(f"/v1/content/{free['data'][0]['id']}", headers=user.headers).status_code == 200
    premium_id = client.get("/v1/content", params={"premium": True, "kind": "video"}, headers=user.headers).json()[
        "data"
    ][0]["id"]
    refused = client.get(f"/v1/content/{premium_id}", headers=user.headers)
    assert refused.status_code == 403 and error_code(refused) == "entitlement_required"
    # Unlocking with credits: 402 while short, then once; a second unlock costs nothing.
    assert error_code(client.post(f"/v1/content/{premium_id}/unlock", headers=user.headers)) == "insufficient_credits"
    grant = client.post(
        "/v1/credits/grants", json={"user_id": user.id, "amount": 7, "idempotency_key": "g1"}, headers=admin.headers
    )
    assert grant.status_code == 201
    unlocked = client.post(f"/v1/content/{premium_id}/unlock", headers=user.headers).json()
    assert unlocked == {"item_id": premium_id, "credits_spent": 5, "balance": 2, "already_unlocked": False}
    assert client.post(f"/v1/content/{premium_id}/unlock", headers=user.headers).json()["balance"] == 2
    assert client.get(f"/v1/content/{premium_id}", headers=user.headers).status_code == 200
    assert error_code(client.post(f"/v1/content/{free['data'][0]['id']}/unlock", headers=user.headers)) == "not_premium"


@pytest.mark.security
def test_content_ownership(platform: Platform, client: TestClient) -> None:
    owner, other = make_account(platform, role="trainer"), make_account(platform, role="trainer")
    item = create_video(client, owner.headers, premium=True)
    assert (
        client.patch(f"/v1/content/{item['id']}", json={"title": "mine now"}, headers=other.headers).status_code == 404
    )
    assert upload(client, item["id"], other.headers, MP4).status_code == 404
    assert client.patch("/v1/content/ex-Pushups", json={"title": "x"}, headers=other.headers).status_code == 404
    patched = client.patch(f"/v1/content/{item['id']}", json={"premium": False}, headers=owner.headers)
    assert patched.status_code == 200 and patched.json()["premium"] is False
    assert client.patch(f"/v1/content/{item['id']}", json={"title": None}, headers=owner.headers).status_code == 422


def test_uploads_to_s3(db_url: str, tmp_path: Path, s3_endpoint: str, aws_env: None) -> None:
    bucket = f"fitrec-media-{uuid.uuid4().hex[:8]}"  # the moto server lives for the whole module
    s3_store(s3_endpoint, bucket)
    p = open_platform(make_settings(db_url, tmp_path, storage_url=f"s3://{bucket}/prod", s3_endpoint_url=s3_endpoint))
    try:
        with p.sessions() as session:
            seed_catalogue(session)
        with TestClient(make_app(p)) as c:
            trainer = make_account(p, role="trainer")
            item = create_video(c, trainer.headers)
            assert upload(c, item["id"], trainer.headers, MP4).status_code == 200
            assert c.get(f"/v1/content/{item['id']}/media", headers=trainer.headers).content == MP4
        import boto3

        keys = [
            o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
        ]
        assert len(keys) == 1 and keys[0].startswith(f"prod/content/{item['id']}/") and keys[0].endswith(".mp4")
    finally:
        p.close()
