"""The FastAPI application: routers, errors, limits, metrics, and the sources it runs.

The app's lifespan runs the configured sources on the server's own event loop,
into the same pipeline `POST /v1/posts` uses. On shutdown, sources stop reading,
the batch in flight is committed, and only then does the process exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ima import web
from ima.api import chat, errors, posts, responses, system, trends
from ima.api.service import Services
from ima.sources import runner

MAX_REQUEST_BYTES = 1024 * 1024  # except POST /v1/posts, which has its own limit


def create_app(svc: Services) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = None
        if svc.sources:
            task = asyncio.create_task(
                runner.run(
                    svc.sources,
                    svc.pipeline,
                    state_dir=svc.store.data_dir / "sources",
                    stop=stop,
                    until_stopped=True,
                )
            )
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await asyncio.get_running_loop().run_in_executor(None, svc.pipeline.close)

    app = FastAPI(
        title="ima",
        version="0.1.0",
        summary="Answers about what is happening now, grounded in live posts, with citations.",
        lifespan=lifespan,
    )
    app.state.services = svc
    errors.install(app)

    @app.middleware("http")
    async def limits_and_latency(request: Request, call_next):
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_REQUEST_BYTES and request.url.path != "/v1/posts":
            return JSONResponse(
                errors.body(413, f"body over {MAX_REQUEST_BYTES} bytes", "body"), 413
            )
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        svc.metrics.requests.labels(path).observe(time.perf_counter() - started)
        return response

    for module in (chat, responses, posts, trends, system):
        app.include_router(module.router)
    web.install(app)
    return app
