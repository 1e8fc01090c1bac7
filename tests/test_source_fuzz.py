"""10,000 random and mutated frames per source: no crash, every failure a named kind."""

import asyncio
import json
import random
from collections import Counter
from typing import Any

from ima.ingest.changes import Cursor, Delete, Edit, Engagement
from ima.ingest.normalize import RecordError, normalize
from ima.sources.base import FrameError
from ima.sources.jetstream import Handles
from ima.sources.jetstream import Jetstream as JetstreamSource
from ima.sources.jetstream import parse_event as jetstream_event
from ima.sources.mastodon import parse_event as mastodon_event
from ima.sources.mastodon import sse_events
from ima.sources.rss import feed_records
from ima.sources.xapi import tweet_record
from servers import jetstream_like, jetstream_post, mastodon_status, x_post

FRAMES = 10_000
KINDS = {
    "invalid_json", "bad_type", "bad_field", "unknown_event", "oversized", "api_error",
    "invalid_feed", "unexpected_binary", "bad_compression", "invalid_utf8",
}  # fmt: skip


def _mutate_value(rng: random.Random, value: Any) -> Any:
    return rng.choice(
        [
            None,
            0,
            -1,
            2**70,
            1.5,
            "",
            "x" * rng.randint(1, 300),
            [],
            {},
            True,
            [value],
            {"a": value},
        ]
    )


def _mutate_tree(rng: random.Random, tree: Any, rate: float = 0.15) -> Any:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            roll = rng.random()
            if roll < rate / 3:
                continue  # drop the field
            out[key] = _mutate_value(rng, value) if roll < rate else _mutate_tree(rng, value, rate)
        return out
    if isinstance(tree, list):
        return [_mutate_tree(rng, v, rate) for v in tree]
    return _mutate_value(rng, tree) if rng.random() < rate else tree


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        pos = rng.randrange(len(buf) + 1)
        if op < 0.4 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op < 0.7:
            del buf[pos : pos + rng.randint(1, 20)]
        else:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(buf)


def _frames(rng: random.Random, seeds: list[Any]) -> list[bytes]:
    frames = []
    for i in range(FRAMES):
        seed = rng.choice(seeds)
        mode = i % 4
        if mode == 0:
            frames.append(json.dumps(_mutate_tree(rng, seed)).encode())
        elif mode == 1:
            frames.append(_mutate_bytes(rng, json.dumps(seed).encode()))
        elif mode == 2:
            frames.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
        else:
            frames.append(json.dumps(seed).encode())
    return frames


def _check(items: list[Any], outcome: Counter) -> None:
    """What a parser hands to ingest must be ingest's types, and records must either
    normalize or fail with a RecordError."""
    for item in items:
        if isinstance(item, Delete | Engagement | Cursor):
            assert isinstance(item.__slots__, tuple)
            outcome["change"] += 1
            continue
        record = item.record if isinstance(item, Edit) else item
        assert isinstance(record, dict)
        try:
            normalize(record)
            outcome["post"] += 1
        except RecordError as exc:
            outcome[f"record:{exc.kind}"] += 1


def test_jetstream_frames():
    rng = random.Random(1)
    t = 1_763_805_600_000_000
    seeds = [
        jetstream_post("did:plc:a", "k", "hello there", t, langs=["en"]),
        jetstream_post(
            "did:plc:a",
            "q",
            "quoting",
            t,
            reply={"parent": {"uri": "at://did:plc:b/app.bsky.feed.post/p", "cid": "c"}},
            embed={
                "$type": "app.bsky.embed.recordWithMedia",
                "record": {"record": {"uri": "at://did:plc:c/app.bsky.feed.post/z"}},
            },
        ),
        jetstream_like("did:plc:b", "l", "did:plc:a", "k", t),
        {"did": "did:plc:a", "time_us": t, "kind": "identity", "identity": {"handle": "a.b"}},
    ]
    source = JetstreamSource("bluesky", "ws://127.0.0.1:1/subscribe")
    handles, outcome = Handles(), Counter()
    for i, frame in enumerate(_frames(rng, seeds)):
        # text frames are UTF-8 (the WebSocket layer checks); some arrive as binary
        message = frame if i % 7 == 0 else frame.decode("utf-8", "replace")
        try:
            _check(jetstream_event(source.decode(message), handles), outcome)
        except FrameError as exc:
            assert exc.kind in KINDS, exc.kind
            outcome[exc.kind] += 1
    assert outcome["post"] > 500 and outcome["invalid_json"] > 1000


def test_mastodon_frames():
    rng = random.Random(2)
    seeds = [mastodon_status(1, "hello <b>there</b>"), mastodon_status(2, "x", reblog=None)]
    outcome = Counter()
    for i, frame in enumerate(_frames(rng, seeds)):
        event = ("update", "status.update", "delete", "notification")[i % 4]
        payload = frame.decode("utf-8", errors="replace")
        try:
            _check(mastodon_event(event, payload, "host.example"), outcome)
        except FrameError as exc:
            assert exc.kind in KINDS, exc.kind
            outcome[exc.kind] += 1
    assert outcome["post"] > 500


def test_sse_parser_on_random_bytes():
    rng = random.Random(3)

    async def chunks(data: bytes):
        for start in range(0, len(data), 37):
            yield data[start : start + 37]

    async def parse_all() -> Counter:
        seen = Counter()
        for _ in range(FRAMES // 10):
            data = bytes(rng.choice(b"event: data:\n\r:x{}\xff") for _ in range(400))
            async for item in sse_events(chunks(data), limit=64):
                seen["error" if isinstance(item, FrameError) else "event"] += 1
        return seen

    seen = asyncio.run(parse_all())
    assert seen["event"] > 0 and seen["error"] > 0


def test_x_frames():
    rng = random.Random(4)
    seeds = [x_post("1", "hello", "al"), {"errors": [{"title": "operational-disconnect"}]}]
    outcome = Counter()
    for frame in _frames(rng, seeds):
        try:
            _check([tweet_record(json.loads(frame))], outcome)
        except (json.JSONDecodeError, UnicodeDecodeError):
            outcome["invalid_json"] += 1
        except FrameError as exc:
            assert exc.kind in KINDS, exc.kind
            outcome[exc.kind] += 1
    assert outcome["post"] > 1000


def test_feed_documents():
    rng = random.Random(5)
    seed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
        b"<title>Headline</title><link>https://n.example/1</link>"
        b"<pubDate>Sun, 22 Nov 2026 09:30:00 GMT</pubDate></item></channel></rss>"
    )
    outcome = Counter()
    for i in range(FRAMES // 10):  # a feed document is a whole page: 1,000 of them
        data = seed if i % 5 == 0 else _mutate_bytes(rng, seed)
        try:
            _check(feed_records(data, "https://n.example/feed", _now()), outcome)
        except FrameError as exc:
            assert exc.kind in KINDS, exc.kind
            outcome[exc.kind] += 1
    assert outcome["post"] >= 200


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
