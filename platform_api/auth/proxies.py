"""Whom to believe about the client's address: X-Forwarded-For only from the configured proxies.

uvicorn, by default, believes X-Forwarded-For from any loopback peer (proxy_headers=True,
forwarded_allow_ips=127.0.0.1), so anything on the host could name any client address and walk
around the per-address rate limits. Every launch in the project passes proxy_headers=False, and the
app installs uvicorn's own middleware itself, trusting only `trusted_proxies`, and only when set.
"""

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


def trust_forwarded_headers(app: FastAPI, trusted_proxies: list[str]) -> None:
    """Take the client address (and scheme) from X-Forwarded-* when the peer is a listed proxy."""
    if trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies)
