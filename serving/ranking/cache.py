"""Top-k cache behind one small async protocol: Redis in production, in-process TTL/LRU embedded.

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
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def count(self) -> int:
        """How many keys the store holds (Redis: its whole database); raises when it is unreachable."""
        ...

    async def close(self) -> None: ...


class MemoryCache:
    """TTL + LRU in one ordered dict; only the event loop touches it, so it needs no lock."""

    def __init__(self, *, max_entries: int = 100_000, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        expires, value = hit
        if expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._data[key] = (self._clock() + ttl_s, value)
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
    """Plain GET/SET EX on single keys, so it works unchanged on Redis Cluster. Errors propagate."""

    def __init__(self, client: "aioredis.Redis | aioredis.RedisCluster") -> None:
        self._client = client

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._client.set(key, value, ex=ttl_s)

    async def delete(self, key: str) -> None:
        await self._client.delete(key)

    async def count(self) -> int:
        size = await self._client.dbsize()
        return int(sum(size.values()) if isinstance(size, dict) else size)

    async def close(self) -> None:
        await self._client.aclose()


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

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call("get", key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._call("set", key, value, ttl_s)

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
) -> Cache:
    """memory:// → in-process; redis://, rediss://, unix:// → Redis; redis+cluster:// → Redis Cluster.

    Redis comes wrapped in a FallbackCache over an in-process cache of `max_entries`.
    """
    if url.startswith("memory://"):
        return MemoryCache(max_entries=max_entries)
    # No retries: a failed call goes to the fallback at once; the breaker decides when to try again.
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
    return FallbackCache(
        RedisCache(client),
        MemoryCache(max_entries=max_entries),
        failures=breaker_failures,
        reset_s=breaker_reset_s,
    )
