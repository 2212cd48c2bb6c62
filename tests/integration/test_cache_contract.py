"""One contract for every cache implementation; Redis is the machine's real server."""

import pytest

from serving.cache import MemoryCache, RedisCache, make_cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def cache_and_prefix(request):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        yield MemoryCache(), "t:"
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        cache = make_cache(url)
        assert isinstance(cache, RedisCache)
        yield cache, prefix
        cache.close()


def test_contract_set_get_delete(cache_and_prefix) -> None:  # type: ignore[no-untyped-def]
    cache, p = cache_and_prefix
    assert cache.get(p + "missing") is None
    cache.set(p + "a", b"1", 60)
    assert cache.get(p + "a") == b"1"
    cache.set(p + "a", b"2", 60)
    assert cache.get(p + "a") == b"2"
    cache.delete(p + "a")
    assert cache.get(p + "a") is None


def test_memory_cache_expires_and_evicts_least_recent() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=2, clock=clock)
    cache.set("a", b"a", 10)
    cache.set("b", b"b", 10)
    assert cache.get("a") == b"a"  # a is now the most recent
    cache.set("c", b"c", 10)
    assert cache.get("b") is None and cache.get("a") == b"a" and cache.get("c") == b"c"
    clock.now = 10.0
    assert cache.get("a") is None


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported cache URL"):
        make_cache("memcached://x")
