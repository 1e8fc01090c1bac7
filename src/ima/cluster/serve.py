"""`ima serve --fabric`: the API over a cluster, with no store of its own.

Searches, posts by id and answers (chat, responses, ask) go through `PartitionedStore`,
so they are one store's and a partition that did not answer shows as `partial` with the
`missing` ranges in `GET /v1/search`. `POST /v1/posts` publishes to the cluster's stream
(`FabricWriter`). What needs a whole store in this process — trends and news (built by
following every commit), the live feed (which polls the store's log) — answers 501 with
a message that says so; run them with `ima serve` on a store of its own.
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ima import runtime
from ima.api import server
from ima.api.errors import ApiError, response
from ima.cluster.fabric import Fabric
from ima.cluster.partitioned import PartitionedStore
from ima.cluster.writer import FabricWriter
from ima.config import Settings
from ima.errors import Unavailable
from ima.fleet.connection import redacted

#: routes that need a whole store in this process, and why
WHOLE_STORE = {
    "/v1/trends": "trends follow every commit of a whole store",
    "/2/news/": "news are trends, which follow every commit of a whole store",
    "/v1/feed": "the live feed polls a whole store's log",
}


class WholeStoreOnly:
    """Answers 501, saying why, for the routes in `WHOLE_STORE`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for prefix, why in WHOLE_STORE.items():
                if scope["path"].startswith(prefix):
                    refusal = ApiError(
                        501, f"Not served over a cluster: {why}; ask a server with a store "
                        "of its own (ima serve without --fabric).", code="needs_local_store",
                    )  # fmt: skip
                    await response(refusal)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def open_cluster(url: str, cluster: str, *, deadline_s: float = 2.0) -> PartitionedStore:
    """The cluster's store face; `Unavailable` when its NATS or its nodes cannot be reached."""
    store = PartitionedStore(url, Fabric(cluster), deadline_s=deadline_s)
    try:
        return store.open()
    except (concurrent.futures.TimeoutError, TimeoutError, OSError) as exc:
        store.close()
        raise Unavailable(
            f"no cluster {cluster!r} at {redacted(url)} (no node has started it, or NATS "
            f"is unreachable: {type(exc).__name__})"
        ) from None


def fabric_app(
    settings: Settings,
    store: PartitionedStore,
    *,
    no_auth: bool,
    public_url: str,
) -> Any:
    """The API app over `store`, publishing posts to its cluster; keys and quotas as
    `settings` say (in `settings.data_dir`, or Redis)."""
    from ima.api.app import create_app

    svc = runtime.services(
        settings, store, FabricWriter(store.url, store.fabric),
        runtime.llm_backend(settings.llm), runtime.quotas(settings), no_auth=no_auth,
        public_url=public_url,
    )  # fmt: skip
    app = create_app(svc)
    app.add_middleware(WholeStoreOnly)
    return app


def serve_fabric(
    settings: Settings,
    *,
    url: str,
    cluster: str,
    host: str,
    port: int,
    no_auth: bool,
    public_url: str | None,
    say: Callable[[str], None],
) -> None:
    """`ima serve --fabric URL --cluster NAME`: the API over the cluster until SIGTERM or
    Ctrl-C. Bad settings raise `BadInput`, an unreachable cluster `Unavailable`."""
    server.limit_malloc_arenas()  # before any thread starts (README "Hardening")
    Fabric(cluster)  # a bad name fails here, before anything connects
    store = open_cluster(url, cluster)
    try:
        app = fabric_app(settings, store, no_auth=no_auth,
                         public_url=public_url or f"http://{host}:{port}")  # fmt: skip
        mode = "no auth (local mode)" if no_auth else "keys required"
        say(f"ima serving http://{host}:{port}/ (API at /v1) over cluster {cluster!r} at "
            f"{redacted(url)} · {len(store.partitions)} partitions · {mode}")  # fmt: skip
        sys.setswitchinterval(0.001)  # as runtime.serve
        server.serve(app, host, port, on_exit=app.state.feeds.close_all)
    finally:
        store.close()
