"""Helpers the test modules share (tests/ is on sys.path through its conftest)."""

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """The app under a real uvicorn on a free port, in a thread, as `fitrec serve` runs it
    (uvicorn's own forwarded-header handling off); yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def synthetic_ranking_set(n_groups: int, *, seed: int, slate: int = 8) -> pd.DataFrame:
    """Relevance rises with `fit` and is highest for category "b"; `noise` carries nothing."""
    rng = np.random.default_rng(seed)
    n = n_groups * slate
    frame = pd.DataFrame(
        {
            "request_id": np.repeat([f"s{seed}-r{i}" for i in range(n_groups)], slate),
            "fit": rng.random(n),
            "category": rng.choice(["a", "b", "c"], n),
            "noise": rng.random(n),
            "position": np.tile(np.arange(slate), n_groups),
        }
    )
    utility = frame["fit"] + np.where(frame["category"] == "b", 0.6, 0.0) + rng.normal(0, 0.15, n)
    frame["label"] = np.digitize(utility, [0.9, 1.2, 1.45])
    return frame
