"""Mastodon's streaming API, over Server-Sent Events or a WebSocket.

`update` events become records, `status.update` edits, `delete` deletes. A boost
brings in the boosted status itself. Status ids are local to an instance, so a
post's id is `mastodon:<host>/<status id>`: a delete event (which carries only the
id) finds it, and two instances never collide. Since Mastodon 4.2 the public and
hashtag streams need a user token (scope `read:statuses`), sent as a bearer token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import websockets
from websockets.asyncio.client import connect

from ima.errors import BadInput
from ima.ingest.changes import Delete, Edit
from ima.sources import html
from ima.sources.base import (
    MAX_FRAME_BYTES,
    Backoff,
    FrameError,
    Sink,
    Source,
    connection_error_kind,
    lines,
)

#: stream name → (SSE path under /api/v1/streaming, the parameter it takes)
STREAMS: dict[str, tuple[str, str | None]] = {
    "public": ("public", None),
    "public:local": ("public/local", None),
    "public:remote": ("public/remote", None),
    "hashtag": ("hashtag", "tag"),
    "hashtag:local": ("hashtag/local", "tag"),
    "list": ("list", "list"),
    "user": ("user", None),
}


@dataclass(frozen=True, slots=True)
class Stream:
    """One subscription, written `public`, `hashtag:python`, `list:42`, `public:local`."""

    name: str
    param: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Stream:
        spec = spec.strip()
        if spec in STREAMS and STREAMS[spec][1] is None:
            return cls(spec)
        kind, _, value = spec.partition(":")
        if kind == "hashtag" and value.startswith("local:"):
            kind, value = "hashtag:local", value[len("local:") :]
        if kind not in STREAMS or STREAMS[kind][1] is None or not value:
            names = ", ".join(
                k if v[1] is None else f"{k}:VALUE" for k, v in sorted(STREAMS.items())
            )
            raise BadInput(f"unknown Mastodon stream {spec!r}; one of {names}")
        return cls(kind, value.lstrip("#"))

    def sse_path(self) -> str:
        path, key = STREAMS[self.name]
        query = f"?{urlencode({key: self.param})}" if key else ""
        return f"/api/v1/streaming/{path}{query}"

    def subscribe_message(self) -> str:
        message: dict[str, str] = {"type": "subscribe", "stream": self.name}
        key = STREAMS[self.name][1]
        if key:
            message[key] = self.param or ""
        return json.dumps(message)


def status_record(status: Any, host: str) -> dict[str, Any]:
    """A Mastodon Status entity → a record in the replay schema (a boost → its original)."""
    if not isinstance(status, dict):
        raise FrameError("bad_type", "status: expected an object")
    if isinstance(status.get("reblog"), dict):
        status = status["reblog"]
    account = status.get("account")
    if not isinstance(account, dict) or not isinstance(status.get("id"), str | int):
        raise FrameError("bad_field", "status: missing id or account")
    content = status.get("content")
    if not isinstance(content, str):
        raise FrameError("bad_field", "status.content: expected a string")
    text = html.to_text(content)
    warning = status.get("spoiler_text")
    if isinstance(warning, str) and warning.strip():
        text = f"CW: {warning.strip()}\n{text}"
    acct = account.get("acct")
    record: dict[str, Any] = {
        "id": f"{host}/{status['id']}",
        "source": "mastodon",
        "text": text,
        "created_at": status.get("created_at"),
        "author": {
            "handle": acct if isinstance(acct, str) and "@" in acct else f"{acct}@{host}",
            "name": account.get("display_name") or "",
            "followers": account.get("followers_count"),
        },
        "url": status.get("url") or status.get("uri") or "",
        "metrics": {
            "likes": status.get("favourites_count"),
            "reposts": status.get("reblogs_count"),
            "replies": status.get("replies_count"),
        },
    }
    if isinstance(status.get("language"), str):
        record["lang"] = status["language"]
    if status.get("in_reply_to_id") is not None:
        record["reply_to"] = f"{host}/{status['in_reply_to_id']}"
    return record


def parse_event(event: str, payload: Any, host: str) -> list[Any]:
    """One streaming event → ingest items. `payload` is the raw data string (it is JSON
    for statuses, a bare id for deletes)."""
    if not isinstance(payload, str):
        raise FrameError("bad_type", "payload: expected a string")
    if event == "delete":
        status_id = payload.strip().strip('"')
        if not status_id or len(status_id) > 64:
            raise FrameError("bad_field", "delete: bad status id")
        return [Delete(f"mastodon:{host}/{status_id}")]
    if event not in ("update", "status.update"):
        return []  # notifications, filters_changed, announcements: not posts
    try:
        status = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise FrameError("invalid_json", str(exc)[:80]) from None
    record = status_record(status, host)
    return [record if event == "update" else Edit(record)]


async def sse_events(
    chunks: AsyncIterator[bytes], limit: int = MAX_FRAME_BYTES
) -> AsyncIterator[tuple[str, str] | FrameError]:
    """Server-Sent Events as (event, data); heartbeats as ("", ""), errors in place."""
    event, data, size = "message", [], 0
    async for line in lines(chunks, limit):
        if line is None:
            event, data, size = "message", [], 0
            yield FrameError("oversized", "line over the frame limit")
            continue
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data, size = "message", [], 0
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield FrameError("invalid_utf8")
            continue
        if text.startswith(":"):
            yield "", ""
            continue
        field, _, value = text.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            size += len(value)
            if size > limit:
                data = []
                yield FrameError("oversized", "event over the frame limit")
                continue
            data.append(value)


class Mastodon(Source):
    source = "mastodon"

    def __init__(
        self,
        name: str = "mastodon",
        url: str = "https://mastodon.social",
        *,
        streams: Sequence[str] = ("public",),
        token: str | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        backoff: Backoff | None = None,
        idle_timeout_s: float = 90.0,
    ) -> None:
        super().__init__(name, url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise BadInput(f"Mastodon URL must be http(s):// or ws(s)://HOST, got {url!r}")
        self.base = url.rstrip("/")
        self.websocket = parts.scheme in ("ws", "wss")
        self.host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.streams = [Stream.parse(s) for s in streams]
        if not self.streams:
            raise BadInput("Mastodon: name at least one stream")
        if len(self.streams) > 1 and not self.websocket:
            raise BadInput(
                "Mastodon over SSE takes one stream per source: use a ws:// or wss:// URL "
                "to subscribe to several on one connection, or declare one source per stream"
            )
        self.token = token
        self.max_frame_bytes = max_frame_bytes
        self.backoff = backoff or Backoff(1.0, 60.0)
        self.idle_timeout_s = idle_timeout_s  # Mastodon sends a heartbeat every ~10 s

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def run(self, sink: Sink) -> None:
        while True:
            try:
                if self.websocket:
                    await self._websocket(sink)
                else:
                    await self._sse(sink)
                reason = "server closed the stream"
            except _Refused as exc:
                self.health.error("http_status", str(exc))
                reason = str(exc)
            except (OSError, httpx.HTTPError, websockets.WebSocketException, TimeoutError) as exc:
                self.health.error(connection_error_kind(exc), type(exc).__name__)
                reason = f"{type(exc).__name__}: {exc}"
            await self.pause(self.backoff.next(), reason)

    async def _handle(self, sink: Sink, event: str, payload: Any) -> None:
        try:
            items = parse_event(event, payload, self.host)
        except FrameError as exc:
            self.health.error(exc.kind, str(exc))
            return
        self.health.event()
        if items:
            await sink.put(items, self.source)

    async def _sse(self, sink: Sink) -> None:
        timeout = httpx.Timeout(15.0, read=self.idle_timeout_s)
        async with httpx.AsyncClient(timeout=timeout) as client:
            url = self.base + self.streams[0].sse_path()
            headers = {**self._headers(), "Accept": "text/event-stream"}
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise _Refused(f"HTTP {response.status_code}")
                self.health.connected = True
                self.backoff.reset()
                async for item in sse_events(response.aiter_bytes(), self.max_frame_bytes):
                    if isinstance(item, FrameError):
                        self.health.error(item.kind, str(item))
                    elif item[0]:
                        await self._handle(sink, *item)

    async def _websocket(self, sink: Sink) -> None:
        url = f"{self.base}/api/v1/streaming"
        async with connect(
            url,
            additional_headers=self._headers(),
            max_size=4 * self.max_frame_bytes,
            open_timeout=15,
            close_timeout=2,
            ping_timeout=60,  # a reader held back by a busy store answers pings late
            compression=None,  # bounded memory: see the note in jetstream.py
        ) as ws:
            for stream in self.streams:
                await ws.send(stream.subscribe_message())
            self.health.connected = True
            self.backoff.reset()
            async for message in ws:
                if len(message) > self.max_frame_bytes:
                    self.health.error("oversized", f"{len(message)} bytes")
                    continue
                try:
                    frame = json.loads(message)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self.health.error("invalid_json")
                    continue
                if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
                    if isinstance(frame, dict) and "error" in frame:
                        self.health.error("server_error", str(frame["error"])[:200])
                    else:
                        self.health.error("bad_type", "message: expected an event object")
                    continue
                await self._handle(sink, frame["event"], frame.get("payload"))


class _Refused(Exception):
    """The server answered, but not with a stream (401, 404, 503…)."""
