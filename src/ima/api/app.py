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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ima import web
from ima.api import audio, auth, chat, errors, fleet, posts, responses, system, trends
from ima.api.feeds import Feeds
from ima.api.service import Services

MAX_REQUEST_BYTES = 1024 * 1024  # except these, which have their own limits
_BODY_LIMITS = {"/v1/posts": posts.MAX_BODY_BYTES,
                "/v1/audio/transcriptions": audio.MAX_UPLOAD_BYTES}  # fmt: skip


def _body_limit(scope: Scope) -> int:
    return _BODY_LIMITS.get(scope["path"], MAX_REQUEST_BYTES)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes (the rest is never read),
    or when the client leaves first."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app: the body already read, then the client's own messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class LimitsAndLatency:
    """What every request goes through before the app. The body is read here, counted
    as it arrives (`Content-Length` or chunked), and refused with 413 past the limit,
    before any key is looked at; a `/v1` request without a key gets 401 before its
    parameters are validated. Every response gets the browser-safety headers
    (`web.headers_for`), and each request is timed by route up to the start of its
    response: the `ima_request_seconds` metric, and a header `Server-Timing: app;dur=MS`
    so that a client can tell our time from the rest. Plain ASGI: Starlette's
    `BaseHTTPMiddleware` costs every request a task and a stream, which showed in
    search latency under load."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.metrics = services.metrics
        self.keys_required = not services.no_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = time.perf_counter() - started
                path = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.requests.labels(path).observe(took)
                headers = [*message.get("headers", ()), *web.headers_for(message)]
                headers.append((b"server-timing", f"app;dur={took * 1000:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None or b"transfer-encoding" in headers:
            limit = _body_limit(scope)
            declared = int(length) if length is not None and length.isdigit() else 0
            body = None if declared > limit else await _read_body(receive, limit)
            if body is None:
                refusal = errors.ApiError(413, f"body over {limit} bytes", param="body")
                await errors.response(refusal)(scope, receive, timed_send)
                return
            receive = _replay(body, receive)
        presented = auth.bearer(headers.get(b"authorization", b"").decode("latin-1"))
        if self.keys_required and presented is None and scope["path"].startswith("/v1/"):
            await errors.response(auth.missing_key())(scope, receive, timed_send)
            return
        await self.app(scope, receive, timed_send)


def create_app(svc: Services) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.writer.start()
        try:
            yield
        finally:
            app.state.feeds.close_all()
            await svc.writer.stop()
            loop = asyncio.get_running_loop()
            if svc.answerers is not None:  # here: uvicorn may end the process on its signal
                await loop.run_in_executor(None, svc.answerers.close)
            svc.keys.close()
            svc.limiter.close()

    app = FastAPI(
        title="ima",
        version="0.1.0",
        summary="Answers about what is happening now, grounded in live posts, with citations.",
        lifespan=lifespan,
        docs_url=None,  # the schema is at /openapi.json; its viewers load scripts from CDNs
        redoc_url=None,
    )
    app.state.services = svc
    app.state.feeds = Feeds()
    errors.install(app)

    app.add_middleware(fleet.RouteHeader)  # inside the limits: X-Ima-Fleet, who answered
    app.add_middleware(LimitsAndLatency, services=svc)

    for module in (chat, responses, posts, trends, system, fleet, audio):
        app.include_router(module.router)
    web.install(app)
    return app
