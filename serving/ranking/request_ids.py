"""Signed recommendation request ids: feedback can tell a served request of this user from a forged one.

An id is 96 random bits and a 128-bit HMAC-SHA256 tag over them and the user id, in hex (56 characters),
so checking one needs no storage: every API replica holding the same secret verifies every other's ids.
The keyed hash is prepared once and copied per call (the key schedule is not redone), which costs about
what `uuid.uuid4().hex` does (measured: 1.8-2.1 µs for either on the shared 2-core machine).
"""

import binascii
import hashlib
import hmac
import os

RANDOM_BYTES = 12
TAG_BYTES = 16
LENGTH = 2 * (RANDOM_BYTES + TAG_BYTES)


class RequestIds:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the request id secret must be at least 16 bytes")
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def _tag(self, random: bytes, user_id: str) -> bytes:
        mac = self._keyed.copy()
        # The random part has a fixed length, so random + user id cannot be read two ways.
        mac.update(random + user_id.encode())
        return mac.digest()[:TAG_BYTES]

    def new(self, user_id: str) -> str:
        """A fresh id of a request made for `user_id`."""
        random = os.urandom(RANDOM_BYTES)
        return (random + self._tag(random, user_id)).hex()

    def verify(self, request_id: str, user_id: str) -> bool:
        """Whether `request_id` was made by a holder of the secret for this very user."""
        if len(request_id) != LENGTH:
            return False
        try:
            raw = binascii.unhexlify(request_id)
        except (binascii.Error, ValueError):
            return False
        if raw.hex() != request_id:  # one spelling per id (lowercase): feedback and impression ids derive from it
            return False
        random, tag = raw[:RANDOM_BYTES], raw[RANDOM_BYTES:]
        return hmac.compare_digest(tag, self._tag(random, user_id))
