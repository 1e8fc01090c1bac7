"""Connecting to the fleet's NATS servers: several URLs (a cluster), reconnecting forever."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import nats

from ima.errors import BadInput


def servers(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4223` (or `nats://user:pass@a:4222,b:4223`) → server URLs.
    Credentials in the first apply to all; a bare `host:port` takes the first's scheme."""
    parts = [p.strip() for p in url.split(",") if p.strip()]
    if not parts:
        raise BadInput("a fleet URL must name at least one server: nats://HOST:PORT")
    first = urlsplit(parts[0])
    if first.scheme not in ("nats", "tls") or not first.hostname:
        raise BadInput(f"a fleet URL must look like nats://HOST:PORT, got {parts[0]!r}")
    userinfo = first.netloc.rpartition("@")[0]
    out = []
    for part in parts:
        if "://" not in part:
            part = f"{first.scheme}://{part}"
        split = urlsplit(part)
        if not split.hostname:
            raise BadInput(f"bad server in fleet URL: {part!r}")
        netloc = split.netloc
        if userinfo and "@" not in netloc:
            netloc = f"{userinfo}@{netloc}"
        out.append(f"{split.scheme}://{netloc}")
    return out


def redacted(url: str) -> str:
    """The URL without passwords, for logs and status lines."""
    return ",".join(
        (lambda s: s._replace(netloc=s.netloc.rpartition("@")[2]).geturl())(urlsplit(u))
        for u in servers(url)
    )


async def _quiet(_error: Exception) -> None:
    """The client would log every failed attempt; reconnecting is routine in a fleet."""


async def connect(url: str, name: str, **callbacks: Any) -> Any:
    """A connection to any server of `url` that reconnects (to any other) for ever."""
    return await nats.connect(
        servers=servers(url),
        name=name,
        connect_timeout=2,
        reconnect_time_wait=0.25,
        max_reconnect_attempts=-1,
        ping_interval=2,
        max_outstanding_pings=2,
        error_cb=_quiet,
        **callbacks,
    )
