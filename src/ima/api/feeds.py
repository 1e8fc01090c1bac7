"""Server-Sent Events feeds that look for news every second until the client leaves."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

POLL_S = 1.0
KEEP_ALIVE_S = 15.0  # a comment this often keeps proxies from closing a quiet feed


def event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def polled(
    request: Request,
    first: Callable[[], Awaitable[list[str]]],
    poll: Callable[[], Awaitable[list[str]]],
) -> StreamingResponse:
    """A feed: the events `first` gives, then whatever `poll` finds each second."""

    async def events() -> AsyncIterator[str]:
        for item in await first():
            yield item
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            for item in await poll():
                yield item
                quiet_since = time.monotonic()
            if time.monotonic() - quiet_since > KEEP_ALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream")
