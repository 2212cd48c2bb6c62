"""The Redis cache against in-process fakes of a dead server: one that accepts and never
answers (a hung Redis), and a port where nothing listens (a killed one)."""

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from redis.exceptions import RedisError
from support import free_port

from serving.ranking.cache import FallbackCache, MemoryCache, make_cache

pytestmark = pytest.mark.robustness


class HungServer:
    """Accepts connections and never answers; counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    server = HungServer()
    yield server
    server.close()


def test_a_hung_redis_never_blocks_the_event_loop(hung: HungServer) -> None:
    cache = make_cache(f"redis://127.0.0.1:{hung.port}/0", timeout_s=0.05)
    order: list[str] = []

    async def read() -> None:
        await cache.get("k", "f")
        order.append("get")

    async def other() -> None:
        order.append("other")

    async def both() -> None:
        await asyncio.gather(read(), other())  # a blocking get would finish before `other` starts
        await cache.close()

    asyncio.run(both())
    assert order == ["other", "get"]


def test_a_hung_redis_falls_back_and_opens_the_circuit(hung: HungServer) -> None:
    cache = make_cache(f"redis://127.0.0.1:{hung.port}/0", timeout_s=0.05, breaker_failures=3, breaker_reset_s=60)

    async def scenario() -> list[bytes | None]:
        await cache.set("k", "f", b"v", 60)  # lands in the in-process fallback
        values = [await cache.get("k", "f") for _ in range(10)]
        await cache.close()
        return values

    values = asyncio.run(scenario())
    assert values == [b"v"] * 10
    # Each timed-out call drops its connection; once the circuit is open Redis is not called at all.
    assert len(hung.accepted) == 3


def test_a_refusing_redis_falls_back() -> None:
    cache = make_cache(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.05)

    async def scenario() -> tuple[bytes | None, bytes | None]:
        await cache.set("k", "f", b"v", 60)
        hit = await cache.get("k", "f")
        await cache.delete("k")
        miss = await cache.get("k", "f")
        with pytest.raises(RedisError):  # health checks ask Redis itself, and see it is down
            await cache.count()
        await cache.close()
        return hit, miss

    assert asyncio.run(scenario()) == (b"v", None)


class FlakyCache(MemoryCache):
    """An in-process stand-in for Redis that can be taken down and brought back."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    async def get(self, key: str, field: str) -> bytes | None:
        self.calls += 1
        if self.down:
            raise ConnectionError("down")
        return await super().get(key, field)


def test_the_circuit_returns_to_redis_when_it_is_back() -> None:
    primary = FlakyCache()
    cache = FallbackCache(primary, MemoryCache(), failures=2, reset_s=0.05)

    async def scenario() -> None:
        await primary.set("k", "f", b"from-redis", 60)
        assert await cache.get("k", "f") == b"from-redis"
        primary.down = True
        assert [await cache.get("k", "f") for _ in range(5)] == [None] * 5  # the empty fallback answers
        assert primary.calls == 3  # 1 good + 2 failures, then the circuit is open
        primary.down = False
        await asyncio.sleep(0.1)  # past reset_s: the next call tries Redis again, and closes the circuit
        assert await cache.get("k", "f") == b"from-redis"
        assert await cache.get("k", "f") == b"from-redis" and primary.calls == 5

    asyncio.run(scenario())
