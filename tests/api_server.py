"""A real `ima serve` application on a loopback port, run by uvicorn in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from ima.api.app import create_app
from ima.api.keys import KeyStore
from ima.api.quota import Limiter, SqliteLimiter
from ima.api.service import Services
from ima.api.tiers import DEFAULT_TIERS, Tier
from ima.bench.serve import free_port
from ima.ingest import Pipeline
from ima.store import Store
from ima.writer import InProcessWriter

TEST_TIERS = {
    **DEFAULT_TIERS,
    "tiny": Tier("tiny", 10, 1000, False, 0),
    "daily2": Tier("daily2", 100, 2, False, 0),
    "audio2": Tier("audio2", 100, 1000, False, 0, audio_seconds_per_day=2),
}


@contextmanager
def serving(
    data: Path, *, no_auth: bool = False, limiter: Limiter | None = None, **services: Any
) -> Iterator[tuple[str, Services]]:
    """Yields (base URL ending in /v1, the services) while the server runs."""
    store = Store(data, commit_interval=0.05)
    port = free_port()
    svc = Services(
        store=store,
        writer=InProcessWriter(Pipeline(store).start()),
        keys=KeyStore(data / "keys.sqlite3"),
        limiter=limiter or SqliteLimiter(data / "quota.sqlite3"),
        tiers=TEST_TIERS,
        no_auth=no_auth,
        public_url=f"http://127.0.0.1:{port}",
        **services,
    )
    try:
        with running(create_app(svc), port):
            yield f"http://127.0.0.1:{port}/v1", svc
    finally:
        store.close()


@contextmanager
def running(app: Any, port: int) -> Iterator[None]:
    """`app` served by uvicorn on loopback `port` while the block runs."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(15)
