"""One contract for every cache implementation; Redis is the machine's real server."""

import asyncio

import pytest

from serving.ranking.cache import FallbackCache, MemoryCache, RedisCache, make_cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis", "redis-behind-breaker", "dead-redis-behind-breaker"])
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
    cache = make_cache(url)
    assert isinstance(cache, FallbackCache)
    if request.param == "redis":
        cache = cache.primary
        assert isinstance(cache, RedisCache)
    yield cache, prefix  # closed by the test, on the event loop its connections belong to


def test_contract_set_get_delete(cache_and_prefix) -> None:  # type: ignore[no-untyped-def]
    cache, p = cache_and_prefix

    async def contract() -> None:
        assert await cache.get(p + "missing") is None
        await cache.set(p + "a", b"1", 60)
        assert await cache.get(p + "a") == b"1"
        await cache.set(p + "a", b"2", 60)
        assert await cache.get(p + "a") == b"2"
        await cache.delete(p + "a")
        assert await cache.get(p + "a") is None
        await cache.close()

    asyncio.run(contract())


def test_memory_cache_expires_and_evicts_least_recent() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=2, clock=clock)

    async def scenario() -> None:
        await cache.set("a", b"a", 10)
        await cache.set("b", b"b", 10)
        assert await cache.get("a") == b"a"  # a is now the most recent
        await cache.set("c", b"c", 10)
        assert await cache.get("b") is None and await cache.get("a") == b"a" and await cache.get("c") == b"c"
        assert await cache.count() == 2
        clock.now = 10.0
        assert await cache.get("a") is None

    asyncio.run(scenario())


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported cache URL"):
        make_cache("memcached://x")
