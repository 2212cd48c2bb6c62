"""Top-k cache behind one small protocol: Redis in production, in-process TTL/LRU embedded."""

import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl_s: int) -> None: ...
    def delete(self, key: str) -> None: ...
    def close(self) -> None: ...


class MemoryCache:
    """TTL + LRU in one ordered dict; a lock keeps it safe under the threadpool."""

    def __init__(self, *, max_entries: int = 100_000, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            expires, value = hit
            if expires <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        with self._lock:
            self._data[key] = (self._clock() + ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Plain GET/SET EX on single keys, so it works unchanged on Redis Cluster."""

    def __init__(self, client: "redis.Redis | redis.RedisCluster") -> None:
        self._client = client

    def get(self, key: str) -> bytes | None:
        value = self._client.get(key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._client.set(key, value, ex=ttl_s)

    def delete(self, key: str) -> None:
        self._client.delete(key)

    def close(self) -> None:
        self._client.close()


def make_cache(url: str, *, max_entries: int = 100_000) -> Cache:
    """memory:// → in-process; redis://, rediss:// → Redis; redis+cluster:// → Redis Cluster."""
    if url.startswith("memory://"):
        return MemoryCache(max_entries=max_entries)
    if url.startswith("redis+cluster://"):
        return RedisCache(redis.RedisCluster.from_url("redis://" + url.removeprefix("redis+cluster://")))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0))
    raise ValueError(f"unsupported cache URL scheme: {url!r} (memory://, redis://, rediss://, redis+cluster://)")
