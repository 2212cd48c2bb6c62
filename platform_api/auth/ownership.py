"""The ownership rule: a user-owned row is visible and changeable only by its owner or an admin.

Anyone else gets 404, not 403, so ids of other people's resources cannot be probed.
"""

from typing import Any, TypeVar

from sqlalchemy import Select, false
from sqlalchemy.orm import Session

from platform_api.auth.principal import Principal
from platform_api.auth.tables import User
from platform_api.errors import ApiError

T = TypeVar("T")


def _actor(principal: User | Principal) -> tuple[str | None, bool]:
    if isinstance(principal, Principal):
        return principal.user_id, principal.is_admin
    return principal.id, principal.role == "admin"


def can_access(obj: Any, principal: User | Principal, *, owner_attr: str = "user_id") -> bool:
    user_id, is_admin = _actor(principal)
    return is_admin or (user_id is not None and getattr(obj, owner_attr) == user_id)


def get_owned(
    session: Session,
    model: type[T],
    id: Any,
    principal: User | Principal,
    *,
    owner_attr: str = "user_id",
    for_update: bool = False,
    what: str | None = None,
) -> T:
    """The row `id` of `model` if `principal` owns it (or is an admin); ApiError 404 otherwise."""
    obj = session.get(model, id, with_for_update=for_update) if id is not None else None
    if obj is None or not can_access(obj, principal, owner_attr=owner_attr):
        name = what or getattr(model, "__tablename__", model.__name__).replace("_", " ")
        raise ApiError(404, f"{name} not found")
    return obj


def owned_by(
    stmt: Select[Any], model: type[Any], principal: User | Principal, *, owner_attr: str = "user_id"
) -> Select[Any]:
    """Restrict a listing query to the principal's own rows (admins see all)."""
    user_id, is_admin = _actor(principal)
    if is_admin:
        return stmt
    if user_id is None:  # a service key owns nothing; `== None` would select ownerless rows
        return stmt.where(false())
    return stmt.where(getattr(model, owner_attr) == user_id)
