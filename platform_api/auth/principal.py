"""Who is calling: a signed-in user or a service holding an API key."""

from dataclasses import dataclass, field
from typing import Literal

from platform_api.auth.tables import ApiKey, User


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "service"]
    user: User | None = None  # kind == "user"
    api_key_id: str | None = None  # kind == "service"
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of_user(cls, user: User) -> "Principal":
        return cls(kind="user", user=user)

    @classmethod
    def of_api_key(cls, key: ApiKey) -> "Principal":
        return cls(kind="service", api_key_id=key.id, scopes=frozenset(key.scopes))

    @property
    def user_id(self) -> str | None:
        return self.user.id if self.user is not None else None

    @property
    def role(self) -> str | None:
        return self.user.role if self.user is not None else None

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.role == "admin"

    def has_scope(self, scope: str) -> bool:
        return self.kind == "service" and scope in self.scopes
