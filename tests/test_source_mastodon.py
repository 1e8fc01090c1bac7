"""Mastodon streaming (SSE and WebSocket) against a loopback server."""

import json

import pytest

from conftest import stream_until
from ima.search import search
from ima.sources.base import Backoff
from ima.sources.mastodon import Mastodon as MastodonSource
from ima.sources.mastodon import Stream
from servers import Mastodon, mastodon_status


def _events() -> list[tuple[str, str]]:
    boosted = mastodon_status(
        5, "original post that got boosted about trams", acct="carol@far.example"
    )
    return [
        ("update", json.dumps(mastodon_status(1, "Snow shuts the &lt;hill&gt; pass<br>Go slow"))),
        ("update", json.dumps(mastodon_status(2, "a post that will be deleted about kites"))),
        ("delete", "2"),
        ("update", json.dumps(mastodon_status(3, "first version about buses"))),
        ("status.update", json.dumps(mastodon_status(3, "second version about trains"))),
        ("update", json.dumps(mastodon_status(4, "", reblog=boosted))),
        ("notification", json.dumps({"id": "n1", "type": "follow"})),
        ("update", "{broken json"),
        ("update", json.dumps({"id": "9", "content": "<p>no account</p>"})),
        ("delete", ""),
    ]  # fmt: skip


def _host(server: Mastodon) -> str:
    return f"127.0.0.1:{server.port}"


def test_sse_public_stream(store):
    with Mastodon(_events()) as server:
        source = MastodonSource(
            "mastodon", server.url(), token="secret", backoff=Backoff(0.05, 0.2)
        )
        host = _host(server)
        stream_until(store, [source], lambda: store.get(f"mastodon:{host}/5") is not None)
    snow = store.get(f"mastodon:{host}/1").post
    assert snow.text == "Snow shuts the <hill> pass\nGo slow"
    assert snow.author.handle == f"alice@{host}" and snow.metrics.likes == 2
    assert snow.url == "https://remote.example/@alice/1"
    assert store.get(f"mastodon:{host}/2") is None  # deleted
    assert [h.post.id for h in search(store, "trains").hits] == [f"mastodon:{host}/3"]
    assert search(store, "buses").hits == []  # the edit replaced the text
    assert store.get(f"mastodon:{host}/5").post.author.handle == "carol@far.example"
    assert source.health.errors == {"invalid_json": 1, "bad_field": 2}


def test_sse_reconnects_after_a_cut_mid_event(store):
    events = [
        ("update", json.dumps(mastodon_status(i, f"numbered post {i} about ferries")))
        for i in range(1, 11)
    ]
    with Mastodon(events, cut_after=4) as server:
        source = MastodonSource("m", server.url(), token="secret", backoff=Backoff(0.05, 0.2))
        stream_until(store, [source], lambda: store.stats().posts == 10)
    assert source.health.reconnects == 1
    assert sum(source.health.errors.values()) == 1  # the cut


def test_sse_without_a_token_is_refused_and_counted(store):
    with Mastodon(_events()) as server:
        source = MastodonSource("m", server.url(), backoff=Backoff(0.05, 0.2))
        stream_until(store, [source], lambda: source.health.errors["http_status"] >= 2)
    assert store.stats().posts == 0


def test_websocket_hashtag_subscription(store):
    with Mastodon(_events()) as server:
        source = MastodonSource(
            "m",
            server.url(scheme="ws"),
            streams=["hashtag:snow"],
            token="secret",
            backoff=Backoff(0.05, 0.2),
        )
        host = _host(server)
        stream_until(
            store,
            [source],
            lambda: (
                store.get(f"mastodon:{host}/5") is not None
                and source.health.errors["server_error"] == 1
            ),
        )
        assert server.subscriptions == [{"type": "subscribe", "stream": "hashtag", "tag": "snow"}]
    assert store.get(f"mastodon:{host}/2") is None
    assert [h.post.id for h in search(store, "trains").hits] == [f"mastodon:{host}/3"]
    assert source.health.errors == {
        "invalid_json": 2,
        "bad_field": 2,
        "server_error": 1,
    }


def test_stream_specs():
    assert Stream.parse("public:local") == Stream("public:local")
    assert Stream.parse("hashtag:#Snow") == Stream("hashtag", "Snow")
    assert Stream.parse("hashtag:local:snow").sse_path() == (
        "/api/v1/streaming/hashtag/local?tag=snow"
    )
    assert Stream.parse("list:42").sse_path() == "/api/v1/streaming/list?list=42"
    with pytest.raises(ValueError, match="unknown Mastodon stream"):
        Stream.parse("hashtag")
    with pytest.raises(ValueError, match="one stream per source"):
        MastodonSource("m", "https://example.social", streams=["public", "hashtag:a"])
