"""Turn presented credentials (a bearer access token or an API key) into a Principal, or refuse."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_api.auth.principal import Principal
from platform_api.auth.tables import ApiKey, AuthSession, User
from platform_api.auth.tokens import InvalidToken, decode_access_token, hash_secret
from platform_api.errors import ApiError

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers=BEARER_CHALLENGE)


def user_from_access_token(session: Session, *, secret: str, token: str) -> User:
    """The token's user, if the token is valid, its session not revoked and the account active."""
    try:
        claims = decode_access_token(secret, token)
    except InvalidToken as exc:
        raise unauthorized("invalid or expired access token") from exc
    # Role and status come from the database, so a demotion or a logout takes effect at once.
    row = session.execute(
        select(User, AuthSession.revoked_at)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(User.id == claims.user_id, AuthSession.id == claims.session_id)
    ).first()
    if row is None or row.revoked_at is not None or not row.User.is_active:
        raise unauthorized("session ended; sign in again")
    user: User = row.User
    return user


def api_key_from_secret(session: Session, *, key: str) -> ApiKey:
    api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(key)))
    if api_key is None or api_key.revoked_at is not None:
        raise ApiError(401, "invalid or revoked API key")
    return api_key


def authenticate(session: Session, *, secret: str, bearer: str | None, api_key: str | None) -> Principal:
    if bearer:
        return Principal.of_user(user_from_access_token(session, secret=secret, token=bearer))
    if api_key:
        return Principal.of_api_key(api_key_from_secret(session, key=api_key))
    raise unauthorized("authentication required: Authorization: Bearer <access token> or X-API-Key")
