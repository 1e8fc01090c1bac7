"""Bluesky through Jetstream: a WebSocket of repository commits as JSON.

Posts become records (`bluesky:at://<did>/app.bsky.feed.post/<rkey>`), post
deletes become `Delete`s, likes and reposts of posts become `Engagement`s, and
identity events teach the handle of a DID (posts seen before keep the DID as
their author; the handle is used from then on). The cursor (the `time_us` of the
newest event whose batch is committed) is saved beside the store; a reconnect or
restart asks for events from a few seconds before it. Replayed posts and deletes
are idempotent; replayed likes and reposts at or before the cursor are dropped,
so counts stay exact.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import websockets
import zstandard
from websockets.asyncio.client import connect

from ima.ingest.changes import Cursor, Delete, Edit, Engagement
from ima.sources.base import (
    MAX_FRAME_BYTES,
    Backoff,
    FrameError,
    Sink,
    Source,
    connection_error_kind,
)

DEFAULT_URL = "wss://jetstream2.us-east.bsky.network/subscribe"
POST, LIKE, REPOST = "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost"
DEFAULT_COLLECTIONS = (POST, LIKE, REPOST)
_HANDLES_KEPT = 100_000


class Handles:
    """DID → handle, learned from identity events; bounded, least recently used out."""

    def __init__(self, capacity: int = _HANDLES_KEPT) -> None:
        self._map: OrderedDict[str, str] = OrderedDict()
        self.capacity = capacity

    def get(self, did: str) -> str:
        handle = self._map.get(did)
        if handle is None:
            return did
        self._map.move_to_end(did)
        return handle

    def learn(self, did: str, handle: str) -> None:
        self._map[did] = handle
        self._map.move_to_end(did)
        if len(self._map) > self.capacity:
            self._map.popitem(last=False)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise FrameError("bad_field", f"{what}: expected a non-empty string")
    return value


def _post_uri(uri: Any) -> str | None:
    """`at://did/app.bsky.feed.post/rkey` → our post id, or None for anything else."""
    if isinstance(uri, str) and uri.startswith("at://") and f"/{POST}/" in uri:
        return f"bluesky:{uri}"
    return None


def _record(did: str, rkey: str, record: dict[str, Any], handles: Handles) -> dict[str, Any]:
    handle = handles.get(did)
    out: dict[str, Any] = {
        "id": f"at://{did}/{POST}/{rkey}",
        "source": "bluesky",
        "text": record.get("text"),
        "created_at": record.get("createdAt"),
        "author": {"handle": handle},
        "url": f"https://bsky.app/profile/{handle}/post/{rkey}",
    }
    langs = record.get("langs")
    if isinstance(langs, list) and langs and isinstance(langs[0], str):
        out["lang"] = langs[0]
    reply = record.get("reply")
    if isinstance(reply, dict) and isinstance(reply.get("parent"), dict):
        out["reply_to"] = reply["parent"].get("uri")
    embed = record.get("embed")
    quoted = embed.get("record") if isinstance(embed, dict) else None
    if isinstance(quoted, dict) and isinstance(quoted.get("record"), dict):
        quoted = quoted["record"]  # a quote with media nests the record once more
    if isinstance(quoted, dict) and isinstance(quoted.get("uri"), str):
        out["quote_of"] = quoted["uri"]
    return out


def parse_event(event: Any, handles: Handles) -> list[Any]:
    """One Jetstream event → ingest items (possibly none); `FrameError` if malformed."""
    if not isinstance(event, dict):
        raise FrameError("bad_type", "event: expected an object")
    kind = event.get("kind")
    did = _str(event.get("did"), "did")
    if kind == "identity":
        identity = event.get("identity")
        if not isinstance(identity, dict):
            raise FrameError("bad_field", "identity: expected an object")
        if isinstance(identity.get("handle"), str) and identity["handle"]:
            handles.learn(did, identity["handle"])
        return []
    if kind == "account":
        return []
    if kind != "commit":
        raise FrameError("unknown_event", f"kind {str(kind)[:40]!r}")
    commit = event.get("commit")
    if not isinstance(commit, dict):
        raise FrameError("bad_field", "commit: expected an object")
    operation = commit.get("operation")
    collection = commit.get("collection")
    rkey = _str(commit.get("rkey"), "commit.rkey")
    if operation == "delete":
        return [Delete(f"bluesky:at://{did}/{POST}/{rkey}")] if collection == POST else []
    if operation not in ("create", "update"):
        raise FrameError("bad_field", f"commit.operation {str(operation)[:40]!r}")
    record = commit.get("record")
    if not isinstance(record, dict):
        raise FrameError("bad_field", "commit.record: expected an object")
    if collection == POST:
        post = _record(did, rkey, record, handles)
        return [post if operation == "create" else Edit(post)]
    if collection in (LIKE, REPOST) and operation == "create":
        subject = record.get("subject")
        target = _post_uri(subject.get("uri")) if isinstance(subject, dict) else None
        if target is None:
            return []
        return [
            Engagement(target, likes=int(collection == LIKE), reposts=int(collection == REPOST))
        ]
    return []


class Jetstream(Source):
    source = "bluesky"

    def __init__(
        self,
        name: str = "bluesky",
        url: str = DEFAULT_URL,
        *,
        collections: Sequence[str] = DEFAULT_COLLECTIONS,
        dids: Sequence[str] = (),
        dictionary: Path | None = None,
        rewind_s: float = 5.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, url)
        self.url = url
        self.collections = list(collections)
        self.dids = list(dids)
        self.max_frame_bytes = max_frame_bytes
        self.rewind_us = int(rewind_s * 1_000_000)
        self.cursor: int | None = None  # as committed with the last batch; read at start
        self.handles = Handles()
        self.backoff = backoff or Backoff(1.0, 60.0)
        self._decompressor = (
            zstandard.ZstdDecompressor(
                dict_data=zstandard.ZstdCompressionDict(dictionary.read_bytes())
            )
            if dictionary is not None
            else None
        )
        self._submitted_us = 0  # newest event handed to ingest

    def subscribe_url(self) -> str:
        params: list[tuple[str, str]] = [("wantedCollections", c) for c in self.collections]
        params += [("wantedDids", d) for d in self.dids]
        params.append(("maxMessageSizeBytes", str(self.max_frame_bytes)))
        if self._decompressor is not None:
            params.append(("compress", "true"))
        if self.cursor is not None:
            params.append(("cursor", str(max(0, self.cursor - self.rewind_us))))
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}{urlencode(params)}"

    def decode(self, message: str | bytes) -> Any:
        if isinstance(message, bytes):
            if self._decompressor is None:
                raise FrameError("unexpected_binary", "binary frame without compression")
            try:
                message = self._decompressor.decompress(
                    message, max_output_size=self.max_frame_bytes
                )
            except zstandard.ZstdError as exc:
                raise FrameError("bad_compression", str(exc)[:80]) from None
        if len(message) > self.max_frame_bytes:
            raise FrameError("oversized", f"{len(message)} bytes")
        try:
            return json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FrameError("invalid_json", str(exc)[:80]) from None

    async def run(self, sink: Sink) -> None:
        while True:
            committed = sink.cursor(self.name)
            self.cursor = int(committed) if committed and committed.isdigit() else None
            self._submitted_us = max(self._submitted_us, self.cursor or 0)
            try:
                await self._session(sink)
                reason = "server closed the stream"
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                self.health.error(connection_error_kind(exc), type(exc).__name__)
                reason = f"{type(exc).__name__}: {exc}"
            await self.pause(self.backoff.next(), reason)

    async def _session(self, sink: Sink) -> None:
        # Frames are checked against max_frame_bytes one by one; the hard cap only keeps
        # a hostile server from making us buffer without limit. No permessage-deflate:
        # frames that inflate 300-fold would slip past the queue's bound (zstd is
        # Jetstream's own compression, and it is bounded per frame).
        async with connect(
            self.subscribe_url(),
            max_size=4 * self.max_frame_bytes,
            open_timeout=15,
            close_timeout=2,
            ping_timeout=60,  # a reader held back by a busy store answers pings late
            compression=None,
        ) as ws:
            self.health.connected = True
            self.backoff.reset()
            async for message in ws:
                try:
                    event = self.decode(message)
                    items = parse_event(event, self.handles)
                except FrameError as exc:
                    self.health.error(exc.kind, str(exc))
                    continue
                time_us = event.get("time_us")
                if not isinstance(time_us, int) or isinstance(time_us, bool):
                    self.health.error("bad_field", "time_us: expected an integer")
                    continue
                self.health.event(time_us)
                await self._hand_over(sink, items, time_us)

    async def _hand_over(self, sink: Sink, items: list[Any], time_us: int) -> None:
        """Items of one event, then the cursor past it, committed together."""
        if time_us <= self._submitted_us:  # replayed after a rewind: counts were added
            items = [i for i in items if not isinstance(i, Engagement)]
        self._submitted_us = max(self._submitted_us, time_us)
        await sink.put([*items, Cursor(self.name, str(time_us))], self.source)
