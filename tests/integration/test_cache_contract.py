"""One contract for every cache implementation; Redis is the machine's real server."""

import asyncio

import pytest

from serving.ranking.cache import FallbackCache, MemoryCache, NearCache, RedisCache, make_cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(
    params=["memory", "redis", "redis-behind-breaker", "redis-with-near-cache", "dead-redis-behind-breaker"]
)
def cache_and_prefix(request):  # type: ignore[no-untyped-def]
    """Every implementation: in-process, plain Redis, what make_cache gives for Redis (the breaker
    over Redis with the in-process fallback), and that same stack over a Redis that is down."""
    if request.param == "memory":
        yield MemoryCache(), "t:"
        return
    if request.param == "dead-redis-behind-breaker":
        from support import free_port

        yield make_cache(f"redis://127.0.0.1:{free_port()}/0"), "t:"
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    if request.param == "redis-with-near-cache":
        near = make_cache(url, near_ttl_s=5)
        assert isinstance(near, NearCache)
        yield near, prefix
        return
    cache = make_cache(url)
    assert isinstance(cache, FallbackCache)
    if request.param == "redis":
        cache = cache.primary
        assert isinstance(cache, RedisCache)
    yield cache, prefix  # closed by the test, on the event loop its connections belong to


def test_contract_set_get_delete(cache_and_prefix) -> None:  # type: ignore[no-untyped-def]
    cache, p = cache_and_prefix

    async def contract() -> None:
        assert await cache.get(p + "missing", "f") is None
        await cache.set(p + "a", "f", b"1", 60)
        assert await cache.get(p + "a", "f") == b"1"
        await cache.set(p + "a", "f", b"2", 60)
        await cache.set(p + "a", "g", b"3", 60)
        assert await cache.get(p + "a", "f") == b"2" and await cache.get(p + "a", "g") == b"3"
        assert await cache.get(p + "a", "h") is None
        await cache.delete(p + "a")  # every field of the key at once
        assert await cache.get(p + "a", "f") is None and await cache.get(p + "a", "g") is None
        await cache.close()

    asyncio.run(contract())


def test_memory_cache_expires_and_evicts_least_recent() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=2, clock=clock)

    async def scenario() -> None:
        await cache.set("a", "f", b"a", 10)
        await cache.set("b", "f", b"b", 10)
        assert await cache.get("a", "f") == b"a"  # a is now the most recent
        await cache.set("c", "f", b"c", 10)
        assert await cache.get("b", "f") is None and await cache.get("a", "f") == b"a"
        assert await cache.get("c", "f") == b"c"
        assert await cache.count() == 2
        clock.now = 10.0
        assert await cache.get("a", "f") is None

    asyncio.run(scenario())


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported cache URL"):
        make_cache("memcached://x")


def test_redis_fields_expire_on_their_own(redis_url, redis_prefix) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        cache = make_cache(redis_url)
        assert isinstance(cache, FallbackCache)
        await cache.set(redis_prefix + "u", "old", b"1", 1)
        await cache.set(redis_prefix + "u", "new", b"2", 60)
        await asyncio.sleep(1.1)
        # The hash lives on (its newest field keeps it), the expired field does not.
        assert await cache.get(redis_prefix + "u", "old") is None
        assert await cache.get(redis_prefix + "u", "new") == b"2"
        await cache.close()

    asyncio.run(scenario())


def test_a_delete_reaches_the_near_copy_and_redis(redis_url, redis_prefix) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        one, other = make_cache(redis_url, near_ttl_s=30), make_cache(redis_url, near_ttl_s=30)
        await one.set(redis_prefix + "u", "f", b"1", 60)
        assert await other.get(redis_prefix + "u", "f") == b"1"  # read through, now near in `other` too
        await one.delete(redis_prefix + "u")
        assert await one.get(redis_prefix + "u", "f") is None
        # Another replica's near copy lives out its near TTL unless a signal drops it (serving's SignalFollower).
        assert await other.get(redis_prefix + "u", "f") == b"1"
        await one.close()
        await other.close()

    asyncio.run(scenario())
