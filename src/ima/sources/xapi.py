"""The X API v2 filtered stream, with its rules kept in step with the configuration.

Each line of the stream is a JSON object with the post in `data` and its author in
`includes.users`; a bare newline every ~20 s keeps the connection alive, so 30 s
of silence means the connection is dead. Reconnects back off as X documents:
network errors linearly (+250 ms, up to 16 s), HTTP errors exponentially from 5 s
up to 320 s, and 429 exponentially from a minute, or until the reset time X gives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ima.errors import BadInput
from ima.sources.base import MAX_FRAME_BYTES, Backoff, FrameError, Sink, Source, lines

DEFAULT_URL = "https://api.x.com"
_FIELDS = {
    "tweet.fields": "created_at,lang,public_metrics,author_id,referenced_tweets",
    "expansions": "author_id",
    "user.fields": "username,name,public_metrics",
}
#: rules this client manages carry this tag prefix; others on the account are left alone
RULE_TAG = "ima"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def tweet_record(frame: Any) -> dict[str, Any]:
    """One stream line → a record in the replay schema (normalizing checks the values)."""
    if not isinstance(frame, dict):
        raise FrameError("bad_type", "frame: expected an object")
    data = frame.get("data")
    if not isinstance(data, dict):
        if "errors" in frame:
            raise FrameError("api_error", json.dumps(frame["errors"])[:200])
        raise FrameError("bad_field", "data: expected an object")
    author_id = data.get("author_id")
    users = _obj(frame.get("includes")).get("users")
    user = next(
        (
            _obj(u)
            for u in (users if isinstance(users, list) else [])
            if _obj(u).get("id") == author_id
        ),
        {},
    )
    handle = user.get("username") or author_id
    record: dict[str, Any] = {
        "id": data.get("id"),
        "source": "x",
        "text": data.get("text"),
        "created_at": data.get("created_at"),
        "author": {
            "handle": handle,
            "name": user.get("name") or "",
            "followers": _obj(user.get("public_metrics")).get("followers_count"),
        },
        "metrics": _obj(data.get("public_metrics")),
    }
    if isinstance(record["id"], str) and isinstance(handle, str):
        record["url"] = f"https://x.com/{handle}/status/{record['id']}"
    if isinstance(data.get("lang"), str) and data["lang"] not in ("und", "qme", "zxx"):
        record["lang"] = data["lang"]
    links = {"replied_to": "reply_to", "quoted": "quote_of", "retweeted": "repost_of"}
    references = data.get("referenced_tweets")
    for ref in references if isinstance(references, list) else []:
        if isinstance(ref, dict) and ref.get("type") in links:
            record[links[ref["type"]]] = ref.get("id")
    return record


class _HttpError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.status = response.status_code
        reset = response.headers.get("x-rate-limit-reset")
        self.reset_at = float(reset) if reset and reset.isdigit() else None


class XStream(Source):
    source = "x"

    def __init__(
        self,
        name: str = "x",
        url: str = DEFAULT_URL,
        *,
        token: str,
        rules: Sequence[str] = (),
        max_frame_bytes: int = MAX_FRAME_BYTES,
        idle_timeout_s: float = 30.0,
        backoff_scale: float = 1.0,
    ) -> None:
        super().__init__(name, url)
        if not token:
            raise BadInput("the X source needs a bearer token (IMA_X_BEARER_TOKEN)")
        self.base = url.rstrip("/")
        self.token = token
        self.rules = list(rules)
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout_s = idle_timeout_s
        k = backoff_scale  # tests shrink X's documented delays by this factor
        self.network_backoff = Backoff(0.25 * k, 16 * k, step=0.25 * k)
        self.http_backoff = Backoff(5 * k, 320 * k)
        self.rate_backoff = Backoff(60 * k, 960 * k)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(15.0, read=self.idle_timeout_s),
        )

    async def sync_rules(self, client: httpx.AsyncClient) -> None:
        """Add configured rules the account lacks; delete our tagged rules no longer wanted."""
        response = await client.get("/2/tweets/search/stream/rules")
        if response.status_code != 200:
            raise _HttpError(response)
        current = response.json().get("data") or []
        have = {r.get("value"): r.get("id") for r in current if isinstance(r, dict)}
        ours = {
            r.get("value"): r.get("id")
            for r in current
            if isinstance(r, dict) and str(r.get("tag", "")).startswith(RULE_TAG)
        }
        add = [{"value": v, "tag": f"{RULE_TAG}:{v}"[:128]} for v in self.rules if v not in have]
        drop = [rid for value, rid in ours.items() if value not in self.rules]
        if drop:
            response = await client.post(
                "/2/tweets/search/stream/rules", json={"delete": {"ids": drop}}
            )
            if response.status_code not in (200, 201):
                raise _HttpError(response)
        if add:
            response = await client.post("/2/tweets/search/stream/rules", json={"add": add})
            if response.status_code not in (200, 201):
                raise _HttpError(response)

    async def run(self, sink: Sink) -> None:
        synced = not self.rules
        while True:
            try:
                async with self._client() as client:
                    if not synced:
                        await self.sync_rules(client)
                        synced = True
                    await self._stream(client, sink)
                delay = self.network_backoff.next()
                reason = "stream ended"
            except _HttpError as exc:
                self.health.error("rate_limited" if exc.status == 429 else "http_status", str(exc))
                if exc.status == 429:
                    delay = self.rate_backoff.next()
                    if exc.reset_at is not None:
                        delay = max(0.0, exc.reset_at - time.time())
                else:
                    delay = self.http_backoff.next()
                reason = str(exc)
            except (OSError, httpx.HTTPError, TimeoutError) as exc:
                self.health.error("connection", type(exc).__name__)
                delay = self.network_backoff.next()
                reason = f"{type(exc).__name__}: {exc}"
            await self.pause(delay, reason)

    async def _stream(self, client: httpx.AsyncClient, sink: Sink) -> None:
        async with client.stream("GET", "/2/tweets/search/stream", params=_FIELDS) as response:
            if response.status_code != 200:
                raise _HttpError(response)
            self.health.connected = True
            for backoff in (self.network_backoff, self.http_backoff, self.rate_backoff):
                backoff.reset()
            async for line in lines(response.aiter_bytes(), self.max_frame_bytes):
                if line is None:
                    self.health.error("oversized", "line over the frame limit")
                    continue
                if not line.strip():
                    continue  # keep-alive
                try:
                    record = tweet_record(json.loads(line))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self.health.error("invalid_json")
                    continue
                except FrameError as exc:
                    self.health.error(exc.kind, str(exc))
                    continue
                self.health.event()
                await sink.put([record], self.source)
