"""Service API keys for the app backend: created by admins, scoped, stored hashed, shown once."""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_api.auth.tables import ApiKey
from platform_api.auth.tokens import hash_secret, new_id, new_secret
from platform_api.errors import ApiError

KEY_PREFIX = "fitrec_sk_"


def create_api_key(session: Session, *, name: str, scopes: list[str], created_by: str | None) -> tuple[ApiKey, str]:
    """The stored key and its secret (returned to the admin once; only its hash is kept)."""
    raw = KEY_PREFIX + new_secret()
    key = ApiKey(
        id=new_id(),
        name=name,
        prefix=raw[: len(KEY_PREFIX) + 6],
        key_hash=hash_secret(raw),
        scopes=sorted(set(scopes)),
        created_by=created_by,
        created_at=datetime.now(UTC),
    )
    session.add(key)
    session.commit()
    return key, raw


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)).all())


def revoke_api_key(session: Session, *, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise ApiError(404, "API key not found")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.commit()
    return key
