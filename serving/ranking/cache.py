"""Top-k cache behind one small async protocol: Redis in production (with a near in-process copy), in-process
TTL/LRU embedded.

Every call is a coroutine, so a slow or hung Redis never blocks the event loop; every Redis
call has a short timeout and no retries, and a circuit breaker (purgatory) lets the
in-process cache stand in while Redis is down. A cache failure never reaches the caller.
"""

import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
CIRCUIT = "cache"


class Cache(Protocol):
    """Values grouped under a key (a user's slates, one field per model version, arm, surface and k), so
    everything of one user is dropped in one call; each value expires on its own after `ttl_s`."""

    async def get(self, key: str, field: str) -> bytes | None: ...
    async def set(self, key: str, field: str, value: bytes, ttl_s: int) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def count(self) -> int:
        """How many keys the store holds (Redis: its whole database); raises when it is unreachable."""
        ...

    async def close(self) -> None: ...


class MemoryCache:
    """TTL + LRU over keys in one ordered dict; only the event loop touches it, so it needs no lock."""

    def __init__(self, *, max_entries: int = 100_000, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._data: OrderedDict[str, dict[str, tuple[float, bytes]]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str, field: str) -> bytes | None:
        fields = self._data.get(key)
        hit = None if fields is None else fields.get(field)
        if hit is None:
            return None
        expires, value = hit
        if expires <= self._clock():
            del fields[field]  # type: ignore[union-attr]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, field: str, value: bytes, ttl_s: float) -> None:
        fields = self._data.get(key)
        if fields is None:
            fields = self._data[key] = {}
        fields[field] = (self._clock() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def count(self) -> int:
        return len(self._data)

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """One Redis hash per key; a field's value carries its own expiry time (Redis 7.0 has no per-field TTL)
    and the hash expires `ttl_s` after its last write. One key per call, so it works on Redis Cluster.
    Errors propagate."""

    def __init__(self, client: "aioredis.Redis | aioredis.RedisCluster", *, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self._client = client
        self._clock = clock

    async def get(self, key: str, field: str) -> bytes | None:
        value = await self._client.hget(key, field)  # type: ignore[misc]
        if not isinstance(value, bytes):
            return None
        expires, _, slate = value.partition(b" ")
        return slate if float(expires) > self._clock() else None

    async def set(self, key: str, field: str, value: bytes, ttl_s: float) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hset(key, field, b"%.3f %s" % (self._clock() + ttl_s, value))  # type: ignore[arg-type]
            pipe.expire(key, max(1, int(ttl_s + 0.999)))
            await pipe.execute()

    async def delete(self, key: str) -> None:
        await self._client.delete(key)

    async def count(self) -> int:
        size = await self._client.dbsize()
        return int(sum(size.values()) if isinstance(size, dict) else size)

    async def close(self) -> None:
        await self._client.aclose()


class NearCache:
    """An in-process copy (`near_ttl_s`) in front of a shared cache.

    A hit costs no Redis round trip, which is most of a cached answer's cost. A delete reaches
    this process's copy at once; other replicas drop theirs on the worker's signal (serving's
    SignalFollower), and at the latest after `near_ttl_s`.
    """

    def __init__(self, shared: Cache, *, near_ttl_s: float, max_entries: int) -> None:
        self.shared = shared
        self._near = MemoryCache(max_entries=max_entries)
        self._ttl = near_ttl_s

    async def get(self, key: str, field: str) -> bytes | None:
        value = await self._near.get(key, field)
        if value is None:
            value = await self.shared.get(key, field)
            if value is not None:
                await self._near.set(key, field, value, self._ttl)
        return value

    async def set(self, key: str, field: str, value: bytes, ttl_s: int) -> None:
        await self._near.set(key, field, value, min(self._ttl, ttl_s))
        await self.shared.set(key, field, value, ttl_s)

    async def delete(self, key: str) -> None:
        await self._near.delete(key)
        await self.shared.delete(key)

    async def count(self) -> int:
        return await self.shared.count()

    async def close(self) -> None:
        await self.shared.close()
        await self._near.close()


# What a dead, hung or refusing Redis raises (TimeoutError is an OSError).
FAILURES = (RedisError, OSError, OpenedState)


class FallbackCache:
    """A primary cache (Redis) behind a circuit breaker, with an in-process cache standing in.

    After `failures` failed calls in a row the circuit opens: calls go to the fallback
    without touching Redis for `reset_s` seconds, then Redis is tried again and the
    circuit closes on the first success.
    """

    def __init__(self, primary: Cache, fallback: Cache, *, failures: int, reset_s: float) -> None:
        self.primary = primary
        self._fallback = fallback
        self._breakers = AsyncCircuitBreakerFactory(default_threshold=failures, default_ttl=reset_s)
        self._breakers.add_listener(_log_state_change)

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            async with await self._breakers.get_breaker(CIRCUIT):
                return await getattr(self.primary, method)(*args)
        except FAILURES:
            return await getattr(self._fallback, method)(*args)

    async def get(self, key: str, field: str) -> bytes | None:
        value: bytes | None = await self._call("get", key, field)
        return value

    async def set(self, key: str, field: str, value: bytes, ttl_s: int) -> None:
        await self._call("set", key, field, value, ttl_s)

    async def delete(self, key: str) -> None:
        # Delete in both: an entry written while Redis was down must not outlive the delete.
        await self._fallback.delete(key)
        await self._call("delete", key)

    async def count(self) -> int:
        """The primary's count, straight through: health checks ask about Redis itself."""
        return await self.primary.count()

    async def close(self) -> None:
        await self.primary.close()
        await self._fallback.close()


def _log_state_change(name: str, event_type: str, event: Any) -> None:
    if event_type == "state_changed":
        if event.state == "opened":
            log.warning("circuit %s opened: Redis is failing, the in-process cache stands in", name)
        elif event.state == "closed":
            log.warning("circuit %s closed: back on Redis", name)


def make_cache(
    url: str,
    *,
    max_entries: int = 100_000,
    timeout_s: float = 0.05,
    breaker_failures: int = 3,
    breaker_reset_s: float = 5.0,
    near_ttl_s: float = 0.0,
) -> Cache:
    """memory:// → in-process; redis://, rediss://, unix:// → Redis; redis+cluster:// → Redis Cluster.

    Redis comes wrapped in a FallbackCache over an in-process cache of `max_entries`, and with
    `near_ttl_s` > 0 behind a NearCache (an in-process copy for that long).
    """
    if url.startswith("memory://"):
        return MemoryCache(max_entries=max_entries)
    shared = FallbackCache(
        shared_cache(url, timeout_s=timeout_s),
        MemoryCache(max_entries=max_entries),
        failures=breaker_failures,
        reset_s=breaker_reset_s,
    )
    if near_ttl_s > 0:
        return NearCache(shared, near_ttl_s=near_ttl_s, max_entries=max_entries)
    return shared


def shared_cache(url: str, *, timeout_s: float) -> RedisCache:
    """The Redis cache alone (no in-process stand-in: its errors propagate), as every replica reads it; the
    URL schemes of `make_cache` but memory://, which no other process can read."""
    # No retries: a failed call goes to the fallback (or the caller) at once; a breaker decides when to retry.
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    client: aioredis.Redis | aioredis.RedisCluster
    if url.startswith("redis+cluster://"):
        client = aioredis.RedisCluster.from_url("redis://" + url.removeprefix("redis+cluster://"), **options)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        client = aioredis.Redis.from_url(url, **options)
    else:
        raise ValueError(f"unsupported cache URL scheme: {url!r} (memory://, redis://, rediss://, redis+cluster://)")
    return RedisCache(client)
