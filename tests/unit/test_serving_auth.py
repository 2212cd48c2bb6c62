"""Who may read a user's recommendations."""

import pytest

from platform_api.auth.principal import Principal
from platform_api.auth.tables import User
from platform_api.errors import ApiError
from serving.auth import KeyCache, ensure_can_read


def _user(user_id: str, role: str = "user") -> Principal:
    return Principal.of_user(User(id=user_id, role=role))


@pytest.mark.parametrize(
    "principal",
    [Principal(kind="service", scopes=frozenset({"recommendations:read"})), _user("u-1"), _user("a-9", "admin")],
)
@pytest.mark.security
def test_allowed_readers(principal: Principal) -> None:
    ensure_can_read(principal, "u-1")


@pytest.mark.security
def test_other_users_get_404_and_unscoped_services_403() -> None:
    with pytest.raises(ApiError) as other:
        ensure_can_read(_user("u-2"), "u-1")
    assert other.value.status == 404
    with pytest.raises(ApiError) as unscoped:
        ensure_can_read(Principal(kind="service", scopes=frozenset({"events:write"})), "u-1")
    assert unscoped.value.status == 403


def test_key_cache_forgets_after_its_ttl() -> None:
    cache = KeyCache(ttl_s=0.0)
    cache.put("k", Principal(kind="service"))
    assert cache.get("k") is None
    fresh = KeyCache(ttl_s=60)
    fresh.put("k", Principal(kind="service"))
    assert fresh.get("k") is not None
