"""Signed request ids: verified without storage, bound to the user, refused when forged; the secret's setting."""

import time

import pytest
from pydantic import ValidationError

from platform_api.config import DEV_PLACEHOLDER
from serving.config import ServingSettings
from serving.ranking.request_ids import RequestIds

SECRET = b"s" * 32


def test_an_id_verifies_for_its_user_only_and_under_its_secret() -> None:
    ids = RequestIds(SECRET)
    rid = ids.new("u-1")
    assert len(rid) <= 64 and rid == rid.lower() and int(rid, 16) >= 0
    assert ids.verify(rid, "u-1")
    assert RequestIds(SECRET).verify(rid, "u-1")  # another replica with the same secret
    assert not ids.verify(rid, "u-2")
    assert not ids.verify(rid, "u-1 ")
    assert not RequestIds(b"t" * 32).verify(rid, "u-1")
    assert len({ids.new("u-1") for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "forge",
    [
        lambda rid: rid[:-1] + ("0" if rid[-1] != "0" else "1"),  # tag changed
        lambda rid: ("0" if rid[0] != "0" else "1") + rid[1:],  # random part changed
        lambda rid: rid.upper(),  # another spelling of the same bytes
        lambda rid: rid[:-2],
        lambda rid: rid + "00",
        lambda rid: "z" * len(rid),
        lambda rid: "é" * len(rid),
        lambda rid: "",
        lambda rid: "0" * len(rid),
    ],
)
def test_forged_or_malformed_ids_are_refused(forge) -> None:  # type: ignore[no-untyped-def]
    ids = RequestIds(SECRET)
    rid = ids.new("u-1")
    forged = forge(rid)
    assert forged != rid
    assert not ids.verify(forged, "u-1")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        RequestIds(b"short")


def test_making_and_checking_an_id_costs_microseconds() -> None:
    ids = RequestIds(SECRET)
    n = 20_000
    started = time.perf_counter()
    made = [ids.new("u-00042") for _ in range(n)]
    new_ns = (time.perf_counter() - started) / n * 1e9
    started = time.perf_counter()
    assert all(ids.verify(rid, "u-00042") for rid in made)
    verify_ns = (time.perf_counter() - started) / n * 1e9
    print(f"RequestIds.new {new_ns:.0f} ns/call, verify {verify_ns:.0f} ns/call")
    # About 2 µs each on the shared machine; a bound that catches a per-call key schedule or a slow path.
    assert new_ns < 20_000 and verify_ns < 20_000


def test_the_secret_setting_refuses_the_placeholder_outside_dev() -> None:
    dev = ServingSettings()
    assert dev.environment == "dev" and dev.request_id_secret.get_secret_value() == DEV_PLACEHOLDER
    with pytest.raises(ValidationError, match="FITREC_SERVING_REQUEST_ID_SECRET"):
        ServingSettings(FITREC_ENV="production")
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ServingSettings(FITREC_ENV="production", request_id_secret="too short")
    real = ServingSettings(FITREC_ENV="production", request_id_secret="r" * 40)
    assert real.request_id_secret.get_secret_value() == "r" * 40
