"""The Redis online store's reads are bounded: a Redis that accepts and never answers fails fast."""

import socket
import time
from pathlib import Path

import pytest
import redis

from features.store import open_store, redis_connection_string


@pytest.mark.robustness
def test_connection_string_carries_the_timeouts() -> None:
    assert redis_connection_string("redis://h:1/2", timeout_s=0.25) == (
        "h:1,db=2,socket_timeout=0.25,socket_connect_timeout=0.25,retry=null"
    )
    assert redis_connection_string("redis://h:1/2") == "h:1,db=2"


@pytest.mark.robustness
def test_a_silent_redis_times_the_online_store_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        store = open_store(data_dir=tmp_path, redis_url=url, redis_timeout_s=0.2)
        client = store._get_provider().online_store._get_client(store.config.online_store)
        started = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            client.ping()
        assert time.monotonic() - started < 1  # no retries; unbounded, this hangs forever
