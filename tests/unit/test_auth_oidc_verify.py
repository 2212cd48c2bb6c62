"""OIDC id_token verification with a locally generated RSA key and JWKS (real signatures, no mocks)."""

import hashlib
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from platform_api.auth.oidc import JwksCache, OidcError, verify_id_token
from platform_api.config import OidcProvider

ISSUER = "https://accounts.google.test"
CLIENT_ID = "fitrec-ios.apps.test"
PROVIDER = OidcProvider(issuers=[ISSUER], audiences=[CLIENT_ID], jwks_uri="https://keys.test/jwks")
NONCE = "nonce-0123456789"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY, OTHER_KEY = _key(), _key()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def _token(key: Any = KEY, kid: str = "k1", alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 600,
        "nonce": NONCE,
        "email": "ada@example.com",
        "email_verified": True,
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=alg, headers={"kid": kid})


class CountingFetcher:
    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.calls = 0

    def __call__(self, uri: str) -> dict[str, Any]:
        assert uri == PROVIDER.jwks_uri
        self.calls += 1
        return {"keys": self.keys}


@pytest.fixture
def jwks() -> JwksCache:
    return JwksCache(fetch=CountingFetcher([_jwk(KEY, "k1")]))


def test_genuine_token_is_accepted(jwks: JwksCache) -> None:
    claims = verify_id_token(_token(), provider=PROVIDER, jwks=jwks, nonce=NONCE)
    assert claims["sub"] == "1234567890" and claims["email"] == "ada@example.com"


@pytest.mark.security
def test_hashed_nonce_is_accepted(jwks: JwksCache) -> None:
    # Apple's iOS SDK puts SHA-256(nonce) in the token.
    token = _token(nonce=hashlib.sha256(NONCE.encode()).hexdigest())
    assert verify_id_token(token, provider=PROVIDER, jwks=jwks, nonce=NONCE)["sub"] == "1234567890"


@pytest.mark.parametrize(
    ("token_kwargs", "match"),
    [
        ({"aud": "someone-elses-client"}, "(?i)audience"),
        ({"iss": "https://evil.test"}, "(?i)issuer"),
        ({"nonce": "another-nonce-value"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"sub": None}, "sub"),
        ({"key": OTHER_KEY}, "Signature verification failed"),  # right kid, wrong private key
        ({"kid": "unknown-kid"}, "signing key not found"),
    ],
)
@pytest.mark.security
def test_bad_tokens_are_rejected(jwks: JwksCache, token_kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(OidcError, match=match):
        verify_id_token(_token(**token_kwargs), provider=PROVIDER, jwks=jwks, nonce=NONCE)


@pytest.mark.security
def test_symmetric_algorithm_confusion_is_rejected(jwks: JwksCache) -> None:
    # Signing HS256 with the public key as the HMAC secret is a classic forgery; only asymmetric algs pass.
    now = int(time.time())
    forged = jwt.encode(
        {"iss": ISSUER, "aud": CLIENT_ID, "sub": "x", "iat": now, "exp": now + 60, "nonce": NONCE},
        "any-secret-of-at-least-32-bytes-long!",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(OidcError, match="algorithm"):
        verify_id_token(forged, provider=PROVIDER, jwks=jwks, nonce=NONCE)
    with pytest.raises(OidcError, match="malformed"):
        verify_id_token("not.a.jwt", provider=PROVIDER, jwks=jwks, nonce=NONCE)


def test_keys_are_cached_and_refetched_on_rotation() -> None:
    fetcher = CountingFetcher([_jwk(KEY, "k1")])
    cache = JwksCache(fetch=fetcher, min_refetch_s=0.0)
    for _ in range(3):
        verify_id_token(_token(), provider=PROVIDER, jwks=cache, nonce=NONCE)
    assert fetcher.calls == 1
    # The provider rotates to a new key: an unknown kid triggers one refetch, then it verifies.
    fetcher.keys = [_jwk(KEY, "k1"), _jwk(OTHER_KEY, "k2")]
    verify_id_token(_token(key=OTHER_KEY, kid="k2"), provider=PROVIDER, jwks=cache, nonce=NONCE)
    assert fetcher.calls == 2


@pytest.mark.security
def test_unknown_kids_cannot_hammer_the_provider() -> None:
    fetcher = CountingFetcher([_jwk(KEY, "k1")])
    cache = JwksCache(fetch=fetcher, min_refetch_s=300.0)
    verify_id_token(_token(), provider=PROVIDER, jwks=cache, nonce=NONCE)
    for i in range(5):
        with pytest.raises(OidcError):
            verify_id_token(_token(kid=f"forged-{i}"), provider=PROVIDER, jwks=cache, nonce=NONCE)
    assert fetcher.calls == 1
