"""Loopback servers that speak the services' documented wire formats, for source tests.

Each runs on its own event loop in a background thread (so the code under test, or
a separate `ima` process, talks to it over real sockets) and records what it saw.
They replay frames exactly as the public docs describe them: Jetstream's JSON
events over a WebSocket, Mastodon's SSE and WebSocket streams, the X API's
newline-delimited stream and rules endpoints, and RSS/Atom feeds with ETags.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import WSMsgType, web

from ima.bench.serve import free_port, wait_until_up


class LoopbackServer:
    """An aiohttp application on 127.0.0.1, served from a background thread."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[web.Request] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def route(self, method: str, path: str, handler: Callable) -> None:
        async def recorded(request: web.Request) -> web.StreamResponse:
            self.requests.append(request)
            return await handler(request)

        self.app.router.add_route(method, path, recorded)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:  # streams that would have stayed open
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def url(self, path: str = "", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


def cut_mid_frame(request: web.Request, partial: bytes) -> None:
    """Write part of a frame, then drop the TCP connection, as a crashing server would."""
    transport = request.transport
    assert transport is not None
    transport.write(partial)
    transport.abort()


# -- Bluesky Jetstream ------------------------------------------------------------------


def jetstream_commit(
    did: str, time_us: int, operation: str, collection: str, rkey: str, record: dict | None
) -> dict:
    """A commit event; a delete carries no record and no cid."""
    commit: dict[str, Any] = {
        "rev": f"rev{time_us}", "operation": operation, "collection": collection, "rkey": rkey,
    }  # fmt: skip
    if record is not None:
        commit.update(record=record, cid=f"bafy{time_us}")
    return {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}


def jetstream_post(
    did: str, rkey: str, text: str, time_us: int, *, operation: str = "create", **record: Any
) -> dict:
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_us / 1e6)) + ".000Z"
    body = {"$type": "app.bsky.feed.post", "text": text, "createdAt": created, **record}
    return jetstream_commit(did, time_us, operation, "app.bsky.feed.post", rkey, body)


def jetstream_like(did: str, rkey: str, subject_did: str, subject_rkey: str, time_us: int) -> dict:
    like = {
        "$type": "app.bsky.feed.like",
        "subject": {
            "cid": "bafysubject",
            "uri": f"at://{subject_did}/app.bsky.feed.post/{subject_rkey}",
        },
        "createdAt": "2026-11-22T10:00:00.000Z",
    }
    return jetstream_commit(did, time_us, "create", "app.bsky.feed.like", rkey, like)


def jetstream_delete(did: str, rkey: str, time_us: int) -> dict:
    return jetstream_commit(did, time_us, "delete", "app.bsky.feed.post", rkey, None)


class Jetstream(LoopbackServer):
    """`/subscribe`: replays `events` after the `cursor` query parameter, in order.

    `raw_frames` go out first on every connection (malformed input); `cut_after`
    drops the first connection mid-frame after that many events; `compressor`
    (zstd with a dictionary) sends events as binary frames, as `compress=true` asks.
    """

    def __init__(
        self,
        events: list[dict],
        *,
        raw_frames: list[str | bytes] = (),
        cut_after: int | None = None,
        per_second: float | None = None,
        compressor: Any = None,
    ) -> None:
        super().__init__()
        self.events = events
        self.raw_frames = list(raw_frames)
        self.cut_after = cut_after
        self.per_second = per_second
        self.compressor = compressor
        self.cursors: list[int | None] = []
        self.sent = 0
        self.route("GET", "/subscribe", self._subscribe)

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        raw_cursor = request.query.get("cursor")
        cursor = int(raw_cursor) if raw_cursor else None
        self.cursors.append(cursor)
        first_connection = len(self.cursors) == 1
        for frame in self.raw_frames:
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        sent_here = 0
        for event in self.events:
            if cursor is not None and event["time_us"] < cursor:
                continue
            if first_connection and self.cut_after is not None and sent_here >= self.cut_after:
                cut_mid_frame(request, b"\x81\x7e\x04\x00" + b'{"did": "did:plc:cut", "ti')
                return ws
            data = json.dumps(event)
            if self.compressor is not None:
                await ws.send_bytes(self.compressor.compress(data.encode()))
            else:
                await ws.send_str(data)
            sent_here += 1
            self.sent += 1
            if self.per_second:
                await asyncio.sleep(1 / self.per_second)
        async for _ in ws:  # a live stream stays open; close frames get answered
            pass
        return ws


# -- Mastodon streaming -------------------------------------------------------------------


def mastodon_status(status_id: int, text: str, *, acct: str = "alice", **extra: Any) -> dict:
    return {
        "id": str(status_id),
        "created_at": "2026-11-22T10:00:00.000Z",
        "in_reply_to_id": None,
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": f"https://remote.example/users/{acct}/statuses/{status_id}",
        "url": f"https://remote.example/@{acct}/{status_id}",
        "replies_count": 0,
        "reblogs_count": 1,
        "favourites_count": 2,
        "content": f"<p>{text}</p>",
        "reblog": None,
        "account": {
            "id": "1",
            "username": acct.split("@")[0],
            "acct": acct,
            "display_name": acct.title(),
            "followers_count": 10,
        },
        "media_attachments": [],
        "mentions": [],
        "tags": [],
        **extra,
    }


class Mastodon(LoopbackServer):
    """`/api/v1/streaming/...` over SSE and `/api/v1/streaming` over WebSocket.

    `events` are (event, payload string) pairs, payloads exactly as Mastodon sends
    them; SSE connections need the bearer `token`. `cut_after` drops the first SSE
    connection mid-event; later connections send what is left.
    """

    def __init__(
        self, events: list[tuple[str, str]], *, token: str = "secret", cut_after: int | None = None
    ) -> None:
        super().__init__()
        self.events = events
        self.token = token
        self.cut_after = cut_after
        self.delivered = 0  # events fully sent, across connections
        self.subscriptions: list[dict] = []
        for path in ("public", "public/local", "hashtag", "list"):
            self.route("GET", f"/api/v1/streaming/{path}", self._sse)
        self.route("GET", "/api/v1/streaming", self._websocket)
        self.route("GET", "/api/v1/streaming/health", self._health)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "The access token is invalid"}, status=401)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b":)\n\n")  # Mastodon opens with a comment
        first = self.delivered == 0
        for index in range(self.delivered, len(self.events)):
            if first and self.cut_after is not None and index >= self.cut_after:
                cut_mid_frame(request, b'event: update\ndata: {"id": "9')
                return response
            event, payload = self.events[index]
            lines = "".join(f"data: {line}\n" for line in payload.split("\n"))
            await response.write(f"event: {event}\n{lines}\n".encode())
            await response.write(b":thump\n\n")  # heartbeat
            self.delivered += 1
        await asyncio.sleep(3600)
        return response

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "The access token is invalid"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        message = await ws.receive()
        if message.type != WSMsgType.TEXT:
            return ws
        subscription = json.loads(message.data)
        self.subscriptions.append(subscription)
        stream = [subscription["stream"]] + ([subscription["tag"]] if "tag" in subscription else [])
        for event, payload in self.events:
            await ws.send_str(json.dumps({"stream": stream, "event": event, "payload": payload}))
        await ws.send_str("not json at all")
        await ws.send_str(json.dumps({"error": "Missing access token"}))
        async for _ in ws:  # a live stream stays open; close frames get answered
            pass
        return ws


# -- X API v2 -----------------------------------------------------------------------------


def x_post(post_id: str, text: str, user: str = "alice", **data: Any) -> dict:
    return {
        "data": {
            "id": post_id,
            "text": text,
            "author_id": f"u-{user}",
            "created_at": "2026-11-22T10:00:00.000Z",
            "lang": "en",
            "public_metrics": {
                "retweet_count": 1,
                "reply_count": 0,
                "like_count": 3,
                "quote_count": 0,
                "impression_count": 40,
            },
            "edit_history_tweet_ids": [post_id],
            **data,
        },
        "includes": {
            "users": [
                {
                    "id": f"u-{user}",
                    "username": user,
                    "name": user.title(),
                    "public_metrics": {"followers_count": 5},
                }
            ]
        },
        "matching_rules": [{"id": "1", "tag": "ima:test"}],
    }


#: in `XApi.lines`: write half a line, then drop the connection
CUT = b"<cut>"


class XApi(LoopbackServer):
    """Rules endpoints (stateful) and the filtered stream.

    The first `rate_limited` stream connections get 429 with `x-rate-limit-reset`
    `reset_in` seconds ahead; the next get the `lines` (bytes, newline-delimited,
    keep-alives included) up to a `CUT`, which drops the connection mid-line; the
    connection after that gets the rest, then the server closes the stream.
    """

    def __init__(
        self,
        lines: list[bytes],
        *,
        token: str = "x-token",
        rate_limited: int = 1,
        reset_in: float = 1.0,
        rules: list[dict] | None = None,
    ) -> None:
        super().__init__()
        self.lines = lines
        self.token = token
        self.rate_limited = rate_limited
        self.reset_in = reset_in
        self.rules = rules or []
        self.stream_attempts: list[float] = []
        self.route("GET", "/2/tweets/search/stream/rules", self._get_rules)
        self.route("POST", "/2/tweets/search/stream/rules", self._post_rules)
        self.route("GET", "/2/tweets/search/stream", self._stream)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _get_rules(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"title": "Unauthorized"}, status=401)
        return web.json_response({"data": self.rules, "meta": {"result_count": len(self.rules)}})

    async def _post_rules(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"title": "Unauthorized"}, status=401)
        body = await request.json()
        if "delete" in body:
            ids = set(body["delete"]["ids"])
            self.rules = [r for r in self.rules if r["id"] not in ids]
        for rule in body.get("add", []):
            self.rules.append({"id": str(100 + len(self.rules)), **rule})
        return web.json_response({"data": self.rules}, status=201)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_attempts.append(time.time())
        if not self._authorized(request):
            return web.json_response({"title": "Unauthorized"}, status=401)
        if len(self.stream_attempts) <= self.rate_limited:
            reset = int(time.time() + self.reset_in + 0.999)
            return web.json_response(
                {"title": "Too Many Requests", "status": 429},
                status=429,
                headers={"x-rate-limit-reset": str(reset)},
            )
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        while self.lines:
            line = self.lines.pop(0)
            if line == CUT:
                cut_mid_frame(request, b'{"data": {"id": "999", "text": "never fini')
                return response
            await response.write(line + b"\r\n")
        await response.write_eof()
        return response


# -- RSS / Atom ---------------------------------------------------------------------------


class Feeds(LoopbackServer):
    """Serves `documents` by path with an ETag; a matching If-None-Match gets 304."""

    def __init__(self, documents: dict[str, bytes]) -> None:
        super().__init__()
        self.documents = documents
        self.statuses: list[int] = []
        for path in documents:
            self.route("GET", path, self._feed)

    async def _feed(self, request: web.Request) -> web.Response:
        body = self.documents[request.path]
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            self.statuses.append(304)
            return web.Response(status=304, headers={"ETag": etag})
        self.statuses.append(200)
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml"}
        )


# -- OpenAI-compatible chat completions ---------------------------------------------------


class ChatCompletions(LoopbackServer):
    """`POST /v1/chat/completions` streaming `reply` (or what `reply(body)` returns) as
    OpenAI's SSE chunks, a few characters each, ending with `data: [DONE]`; `status`
    other than 200 fails the request with an OpenAI-style error body. Records bodies."""

    def __init__(self, reply: str | Callable[[dict], str], *, status: int = 200) -> None:
        super().__init__()
        self.reply = reply
        self.status = status
        self.bodies: list[dict] = []
        self.route("POST", "/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        if self.status != 200:
            error = {"message": "overloaded", "type": "server_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=self.status)
        reply = self.reply(self.bodies[-1]) if callable(self.reply) else self.reply
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "test"}
        first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        await response.write(f"data: {json.dumps(first)}\n\n".encode())
        for start in range(0, len(reply), 7):
            piece = reply[start : start + 7]
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        return response


@contextmanager
def llama_cpp_server(
    model: str, *, n_ctx: int, threads: int, chat_format: str | None = None
) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server (with plain CPU buffers, as `ima`
    runs it: `ima.answer.llama_server`) on a free loopback port, serving
    the GGUF file `model` offline (in `chat_format`, e.g. chatml-function-calling for
    OpenAI tool calls; default: the model's own template); yields its base URL."""
    port = free_port()
    formatted = ["--chat_format", chat_format] if chat_format else []
    process = subprocess.Popen(
        [sys.executable, "-m", "ima.answer.llama_server", "--model", model, "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
         *formatted],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_up(f"{base}/models", process)
        yield base
    finally:
        process.terminate()
        process.wait(10)
