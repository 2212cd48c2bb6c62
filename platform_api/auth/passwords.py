"""Password hashing with Argon2id (argon2-cffi's RFC 9106 defaults)."""

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@lru_cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash("fitrec-dummy-password")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if the password matches; an absent hash still costs one verification (no timing oracle)."""
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
