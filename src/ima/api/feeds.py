"""Server-Sent Events feeds that look for news every second until the client leaves.

A feed holds a connection for as long as its client likes, so they are counted: at
most `PER_KEY` open for one key and `TOTAL` in all, past which a new one is refused
with 429. When the server stops, every feed ends within a poll, so that SIGTERM
never waits on a browser that keeps its page open.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ima.api.errors import ApiError

POLL_S = 1.0
KEEP_ALIVE_S = 15.0  # a comment this often keeps proxies from closing a quiet feed
PER_KEY = 10  # the web app holds two per open page
TOTAL = 200
RETRY_AFTER_S = 30


def event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class Feeds:
    """The feeds open now, by key, and whether the server is stopping."""

    def __init__(self, *, per_key: int = PER_KEY, total: int = TOTAL) -> None:
        self.per_key, self.total = per_key, total
        self.closing = False
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def open(self, key: str) -> None:
        """Count a new feed for `key`, or refuse it (429) past either limit."""
        with self._lock:
            if self._open[key] >= self.per_key:
                why = f"{self.per_key} live feeds are open for this key; close one first."
            elif self._open.total() >= self.total:
                why = "The server has as many live feeds open as it serves; retry later."
            else:
                self._open[key] += 1
                return
        raise ApiError(429, why, code="too_many_feeds",
                       headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip

    def closed(self, key: str) -> None:
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    def count(self) -> int:
        with self._lock:
            return self._open.total()

    def close_all(self) -> None:
        """The server is stopping: every feed ends at its next poll."""
        self.closing = True


class _FeedResponse(StreamingResponse):
    """A feed's response, which gives its slot back however the response ends (the
    client left, the server stopped, or the stream was cancelled before it began)."""

    def __init__(self, events: AsyncIterator[str], done: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream")
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._done()


def polled(
    request: Request,
    first: Callable[[], Awaitable[list[str]]],
    poll: Callable[[], Awaitable[list[str]]],
) -> StreamingResponse:
    """A feed for the caller (authenticated before): the events `first` gives, then
    whatever `poll` finds each second."""
    feeds: Feeds = request.app.state.feeds
    key = request.state.principal.key_id
    feeds.open(key)

    async def events() -> AsyncIterator[str]:
        for item in await first():
            yield item
        quiet_since = time.monotonic()
        while not feeds.closing and not await request.is_disconnected():
            for item in await poll():
                yield item
                quiet_since = time.monotonic()
            if time.monotonic() - quiet_since > KEEP_ALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL_S)

    return _FeedResponse(events(), lambda: feeds.closed(key))
