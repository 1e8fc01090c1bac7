"""RSS and Atom news feeds, polled politely (ETag and Last-Modified).

Each item becomes a post of source `news`: its title and summary as text, the
feed's title as the author, the item's link as the URL. Items seen before come
back as metric updates of the stored post, which changes nothing: polling is
idempotent. Items without a date take the time they were first seen.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import warnings
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx

from ima.errors import BadInput
from ima.sources import html
from ima.sources.base import Backoff, FrameError, Sink, Source

MAX_FEED_BYTES = 8 * 1024 * 1024
MAX_ITEM_CHARS = 2_000


def _instant(entry: Any, fallback: datetime) -> str:
    for key in ("published_parsed", "updated_parsed"):
        with warnings.catch_warnings(action="ignore", category=DeprecationWarning):
            parsed = entry.get(key)  # feedparser warns about its own key aliasing
        if parsed:
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC).isoformat()
            except (OverflowError, ValueError, TypeError):
                continue
    return fallback.isoformat()


def feed_records(body: bytes, feed_url: str, now: datetime) -> list[dict[str, Any]]:
    """A fetched feed document → records; `FrameError` when it is not a feed at all."""
    parsed = feedparser.parse(body)
    if parsed.get("bozo") and not parsed.entries:
        raise FrameError("invalid_feed", type(parsed.get("bozo_exception")).__name__)
    feed = parsed.feed
    host = urlsplit(feed_url).hostname or "feed"
    title = html.to_text(str(feed.get("title") or host))[:200]
    records = []
    for entry in parsed.entries:
        link = entry.get("link") or ""
        native = entry.get("id") or link or entry.get("title")
        if not native:
            continue
        if len(native) > 200:  # ids are long URLs sometimes; keep them stable and short
            native = hashlib.sha256(native.encode()).hexdigest()[:32]
        headline = html.to_text(str(entry.get("title") or ""))
        summary = html.to_text(str(entry.get("summary") or ""))
        text = headline if not summary or summary == headline else f"{headline}\n{summary}"
        record: dict[str, Any] = {
            "id": native,
            "source": "news",
            "text": text[:MAX_ITEM_CHARS],
            "created_at": _instant(entry, now),
            "author": {"handle": host, "name": title},
            "url": link if isinstance(link, str) else "",
        }
        language = feed.get("language")
        if isinstance(language, str) and language:
            record["lang"] = language
        records.append(record)
    return records


class Feed(Source):
    source = "news"

    def __init__(
        self, name: str, url: str, *, interval_s: float = 300.0, backoff: Backoff | None = None
    ) -> None:
        super().__init__(name, url)
        if urlsplit(url).scheme not in ("http", "https"):
            raise BadInput(f"feed URL must be http:// or https://, got {url!r}")
        self.url = url
        self.interval_s = interval_s
        self.backoff = backoff or Backoff(interval_s, max(interval_s, 3600.0))
        self.etag: str | None = None
        self.modified: str | None = None

    async def poll(self, client: httpx.AsyncClient, sink: Sink) -> int:
        """Fetch once; returns how many items were handed to ingest (0 when unchanged)."""
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = self.modified
        async with client.stream("GET", self.url, headers=headers) as response:
            if response.status_code == 304:
                return 0
            if response.status_code != 200:
                raise FrameError("http_status", f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_FEED_BYTES:
                    raise FrameError("oversized", f"feed over {MAX_FEED_BYTES} bytes")
            etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
        records = feed_records(bytes(body), self.url, datetime.now(UTC))
        self.etag, self.modified = etag, modified
        for _ in records:
            self.health.event()
        if records:
            await sink.put(records, self.source)
        return len(records)

    async def run(self, sink: Sink) -> None:
        timeout = httpx.Timeout(30.0)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            while True:
                try:
                    await self.poll(client, sink)
                    self.health.connected = True
                    self.backoff.reset()
                    delay = self.interval_s
                except FrameError as exc:
                    self.health.error(exc.kind, str(exc))
                    delay = self.backoff.next()
                except (OSError, httpx.HTTPError, TimeoutError) as exc:
                    self.health.error("connection", type(exc).__name__)
                    self.health.connected = False
                    delay = self.backoff.next()
                await asyncio.sleep(delay)
