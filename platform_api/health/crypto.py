"""Encryption of provider tokens at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a key from settings.

The Fernet key is derived from `settings.encryption_key` with HKDF-SHA256, so any strong
secret string works as configuration, and this key is used for nothing else.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["InvalidToken", "TokenCipher"]


class TokenCipher:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("an encryption key is required")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"fitrec/health-tokens", info=b"fernet-v1").derive(
            secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        """The plaintext; raises InvalidToken for another key or tampered bytes."""
        return self._fernet.decrypt(token).decode()
