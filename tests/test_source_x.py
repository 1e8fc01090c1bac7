"""The X API v2 filtered stream against a loopback server: rules, 429s, keep-alives."""

import json
import time

from conftest import stream_until
from ima.search import search
from ima.sources.xapi import XStream
from servers import CUT, XApi, x_post


def test_rules_sync_rate_limit_wait_and_stream(store):
    lines = [
        b"",  # keep-alive
        json.dumps(x_post("101", "Flooding reported downtown #storm", "alice")).encode(),
        CUT,
        b"",
        json.dumps(
            x_post(
                "102",
                "RT @alice: Flooding reported downtown",
                "bob",
                referenced_tweets=[{"type": "retweeted", "id": "101"}],
            )
        ).encode(),
        json.dumps(
            x_post(
                "103",
                "@alice stay safe",
                "carol",
                referenced_tweets=[{"type": "replied_to", "id": "101"}],
            )
        ).encode(),
        b"{truncated",
        json.dumps({"errors": [{"title": "operational-disconnect"}]}).encode(),
        b"x" * 5000,
    ]
    rules = [
        {"id": "1", "value": "old rule", "tag": "ima:old rule"},
        {"id": "2", "value": "someone else's", "tag": "other"},
    ]
    with XApi(lines, rate_limited=1, reset_in=1.0, rules=rules) as server:
        source = XStream(
            "x",
            server.url(),
            token="x-token",
            rules=["storm lang:en", "someone else's"],
            max_frame_bytes=4096,
            backoff_scale=0.001,
        )
        stream_until(store, [source], lambda: store.get("x:103") is not None)
        attempts = server.stream_attempts
        # 429: waited until the reset time X gave, not the 1 ms the scaled backoff says
        assert attempts[1] - attempts[0] >= 0.9
        assert sorted(r["value"] for r in server.rules) == ["someone else's", "storm lang:en"]
        params = server.requests[-1].query
        assert params["expansions"] == "author_id"
        assert "public_metrics" in params["tweet.fields"]
    flood = store.get("x:101").post
    assert flood.author.handle == "alice" and flood.author.followers == 5
    assert flood.url == "https://x.com/alice/status/101"
    assert flood.metrics.likes == 3 and flood.metrics.views == 40 and flood.copies == 1
    assert store.get("x:102").post.flags.duplicate_of == "x:101"  # the retweet collapses
    assert store.get("x:103").post.reply_to == "x:101"
    assert [h.post.id for h in search(store, "flooding").hits] == ["x:101"]
    assert source.health.errors["rate_limited"] == 1
    assert source.health.errors["connection"] == 1  # the cut mid-line
    assert store.get("x:999") is None  # the half line is not a post
    assert source.health.errors["invalid_json"] == 1
    assert source.health.errors["api_error"] == 1
    assert source.health.errors["oversized"] == 1


def test_bad_token_backs_off_exponentially(store):
    with XApi([], token="right") as server:
        source = XStream("x", server.url(), token="wrong", backoff_scale=0.01)
        started = time.monotonic()
        stream_until(store, [source], lambda: source.health.errors["http_status"] >= 3)
        gaps = [
            b - a for a, b in zip(server.stream_attempts, server.stream_attempts[1:], strict=False)
        ]
    # 5 s, 10 s, … scaled by 0.01 (with up to 10% jitter below)
    assert gaps[0] >= 0.045 and gaps[1] >= 0.09
    assert time.monotonic() - started < 5
