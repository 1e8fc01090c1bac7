"""What every live source shares: health, back-off, frame errors and the sink.

A source is an async task that reads its service and hands records, deletes and
engagement counts to a `Sink`; the sink waits while the ingest queue is full, so
a source faster than the store stops reading its socket instead of growing memory.
Frames are parsed by pure functions that raise `FrameError(kind)` on anything
malformed: the source counts the kind and goes on with the next frame.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ima.errors import BadInput
from ima.ingest import Ack, Pipeline

log = logging.getLogger(__name__)

#: Frames (a WebSocket message, an SSE event, a line) longer than this are skipped.
MAX_FRAME_BYTES = 1024 * 1024


class FrameError(BadInput):
    """A frame that carries nothing usable; `kind` names why, for counting."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind


def redact(url: str) -> str:
    """The URL without credentials or query (tokens travel there), for logs and status."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def connection_error_kind(exc: BaseException) -> str:
    """`oversized` when a WebSocket closed over a too-big message (1009), else `connection`."""
    for frame in (getattr(exc, "sent", None), getattr(exc, "rcvd", None)):
        if frame is not None and getattr(frame, "code", None) == 1009:
            return "oversized"
    return "connection"


@dataclass
class Health:
    """What `ima stream` shows and `/metrics` will export for one source."""

    name: str
    endpoint: str
    connected: bool = False
    events: int = 0
    errors: Counter = field(default_factory=Counter)
    reconnects: int = 0
    last_event_at: float | None = None  # wall clock, when the last event arrived
    last_created_us: int | None = None  # the author's time of the newest post seen
    last_error: str = ""
    _window: deque = field(default_factory=lambda: deque(maxlen=64))  # (second, count)

    def event(self, created_us: int | None = None, count: int = 1) -> None:
        """`count` events arrived now (the newest created at `created_us`, when known)."""
        now = time.time()
        self.events += count
        self.last_event_at = now
        if created_us is not None and (
            self.last_created_us is None or created_us > self.last_created_us
        ):
            self.last_created_us = created_us
        second = int(now)
        if self._window and self._window[-1][0] == second:
            self._window[-1][1] += count
        else:
            self._window.append([second, count])

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        self.last_error = f"{kind}: {detail}" if detail else kind

    def rate(self, seconds: int = 10) -> float:
        """Events per second over the last `seconds` whole seconds."""
        now = int(time.time())
        recent = sum(count for second, count in self._window if now - seconds <= second < now)
        return recent / seconds

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        lag = None if self.last_created_us is None else now - self.last_created_us / 1e6
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "connected": self.connected,
            "events": self.events,
            "events_per_s": round(self.rate(), 1),
            "last_event_at": self.last_event_at,
            "lag_s": None if lag is None else round(max(lag, 0.0), 3),
            "errors": dict(self.errors),
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }


class Backoff:
    """Delays between reconnects: linear (`step`) or exponential (`factor`), capped,
    with a little jitter so many clients do not return in step."""

    def __init__(
        self, initial: float, maximum: float, *, factor: float = 2.0, step: float = 0.0
    ) -> None:
        self.initial, self.maximum, self.factor, self.step = initial, maximum, factor, step
        self._next = initial

    def reset(self) -> None:
        self._next = self.initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, delay + self.step if self.step else delay * self.factor)
        return min(self.maximum, delay) * random.uniform(0.9, 1.0)


class Sink:
    """Where sources put what they read: the ingest pipeline, from the event loop."""

    def __init__(self, pipeline: Pipeline, loop: asyncio.AbstractEventLoop) -> None:
        self.pipeline = pipeline
        self.loop = loop

    async def put(
        self, items: list[Any], source: str, on_commit: Callable[[], None] | None = None
    ) -> None:
        """Queue records, `Delete`s, `Engagement`s, `Edit`s and `Cursor`s, in order; waits
        while ingest is full. `on_commit()` runs on the event loop once all are committed."""
        ack: Ack | None = None
        if on_commit is not None:
            loop, remaining = self.loop, [len(items)]

            def ack(_post_id: str | None, _status: str, _error: str | None) -> None:
                remaining[0] -= 1
                if remaining[0] == 0:
                    loop.call_soon_threadsafe(on_commit)

        await self.pipeline.submit_async(items, ack, source=source)

    def cursor(self, source_name: str) -> str | None:
        """Where the named source had got to, as of the last committed batch."""
        return self.pipeline.store.cursor(source_name)


class Source(ABC):
    """One configured stream. `run` returns only when a finite source is exhausted."""

    #: the `source` field its posts get, e.g. `bluesky`
    source: str = ""

    def __init__(self, name: str, endpoint: str) -> None:
        self.name = name
        self.health = Health(name, redact(endpoint))

    @abstractmethod
    async def run(self, sink: Sink) -> None: ...

    async def finish(self) -> None:  # noqa: B027 (most sources have nothing to settle)
        """After `run` was cancelled and ingest has committed what it had: settle what
        waits on those commits (acknowledgements) and let go of connections."""

    async def pause(self, delay: float, reason: str) -> None:
        """Wait `delay` seconds before reconnecting, counting the reconnect."""
        self.health.connected = False
        self.health.reconnects += 1
        log.info("%s: %s; reconnecting in %.1fs", self.name, reason, delay)
        await asyncio.sleep(delay)


async def lines(
    chunks: AsyncIterator[bytes], limit: int = MAX_FRAME_BYTES
) -> AsyncIterator[bytes | None]:
    """Split a byte stream into lines (without the newline); a line longer than `limit`
    comes out as None after the rest of it has been skipped, so memory stays bounded."""
    buffer = bytearray()
    skipping = False
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    buffer += chunk[start:]
                    if len(buffer) > limit:
                        buffer.clear()
                        skipping = True
                break
            if skipping:
                skipping = False
                yield None
            else:
                buffer += chunk[start:end]
                if len(buffer) > limit:
                    yield None
                else:
                    yield bytes(buffer.rstrip(b"\r"))
                buffer.clear()
            start = end + 1
