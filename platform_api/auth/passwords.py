"""Password hashing with Argon2id at OWASP's recommended cost (19 MiB, 2 passes, 1 lane).

argon2-cffi's default (64 MiB, 4 lanes) takes ~0.7 s on a busy 2-core host and would let a handful of
concurrent logins starve the API; OWASP rates this profile as equivalent protection. Hashes made with other
parameters are upgraded on the next successful login (needs_rehash).
"""

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@lru_cache
def _hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


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
