"""The FastAPI application: routers, errors, limits, metrics, and the writer it runs.

The app's lifespan starts and stops the writer (`ima.writer`: the sources, and the
ingest that `POST /v1/posts` also feeds). On shutdown, sources stop reading, the
batch in flight is committed, and only then does the process exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ima import web
from ima.api import chat, errors, posts, responses, system, trends
from ima.api.service import Metrics, Services

MAX_REQUEST_BYTES = 1024 * 1024  # except POST /v1/posts, which has its own limit


class LimitsAndLatency:
    """Refuses an over-large body before it is read, and times each request by route up
    to the start of its response: the `ima_request_seconds` metric, and a header
    `Server-Timing: app;dur=MS` so that a client can tell our time from the rest.
    Plain ASGI: Starlette's `BaseHTTPMiddleware` costs every request a task and a
    stream, which showed in search latency under load."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        size = int(length) if length.isdigit() else 0
        if size > MAX_REQUEST_BYTES and scope["path"] != "/v1/posts":
            refusal = errors.body(413, f"body over {MAX_REQUEST_BYTES} bytes", "body")
            await JSONResponse(refusal, 413)(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = time.perf_counter() - started
                path = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.requests.labels(path).observe(took)
                timing = (b"server-timing", f"app;dur={took * 1000:.2f}".encode())
                message = {**message, "headers": [*message.get("headers", ()), timing]}
            await send(message)

        await self.app(scope, receive, timed_send)


def create_app(svc: Services) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.writer.start()
        try:
            yield
        finally:
            await svc.writer.stop()
            loop = asyncio.get_running_loop()
            if svc.answerers is not None:  # here: uvicorn may end the process on its signal
                await loop.run_in_executor(None, svc.answerers.close)

    app = FastAPI(
        title="ima",
        version="0.1.0",
        summary="Answers about what is happening now, grounded in live posts, with citations.",
        lifespan=lifespan,
    )
    app.state.services = svc
    errors.install(app)

    app.add_middleware(LimitsAndLatency, metrics=svc.metrics)

    for module in (chat, responses, posts, trends, system):
        app.include_router(module.router)
    web.install(app)
    return app
