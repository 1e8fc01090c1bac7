"""Bluesky Jetstream against a loopback server speaking Jetstream's wire format."""

import json

import zstandard

from conftest import stream_until
from ima.search import search
from ima.sources.base import Backoff
from ima.sources.jetstream import Jetstream as JetstreamSource
from servers import Jetstream, jetstream_delete, jetstream_like, jetstream_post

T0 = 1_763_805_600_000_000  # 2025-11-22T10:00:00Z in µs
ALICE, BOB = "did:plc:alice", "did:plc:bob"


def _source(server: Jetstream, **options) -> JetstreamSource:
    return JetstreamSource(
        "bluesky", server.url("/subscribe", "ws"), backoff=Backoff(0.05, 0.2), **options
    )


def _uri(did: str, rkey: str) -> str:
    return f"bluesky:at://{did}/app.bsky.feed.post/{rkey}"


def test_posts_likes_deletes_edits_and_identities(store):
    events = [
        {"did": BOB, "time_us": T0, "kind": "identity",
         "identity": {"did": BOB, "handle": "bob.bsky.social", "seq": 1, "time": "x"}},
        jetstream_post(ALICE, "a1", "The harbour bridge is closed after an accident", T0 + 1,
                       langs=["en"]),
        jetstream_post(BOB, "b1", "東京で地震がありました", T0 + 2, langs=["ja"],
                       reply={"root": {"uri": f"at://{ALICE}/app.bsky.feed.post/a1", "cid": "c"},
                              "parent": {"uri": f"at://{ALICE}/app.bsky.feed.post/a1",
                                         "cid": "c"}}),
        jetstream_like(BOB, "l1", ALICE, "a1", T0 + 3),
        jetstream_like(ALICE, "l2", ALICE, "a1", T0 + 4),
        {"did": ALICE, "time_us": T0 + 5, "kind": "commit", "commit": {
            "rev": "r", "operation": "create", "collection": "app.bsky.feed.repost",
            "rkey": "r1", "record": {"subject": {"uri": f"at://{ALICE}/app.bsky.feed.post/a1",
                                                 "cid": "c"}, "createdAt": "2026-11-22T10:00:00Z"},
            "cid": "c"}},
        jetstream_post(ALICE, "a2", "this post will be deleted soon", T0 + 6),
        jetstream_delete(ALICE, "a2", T0 + 7),
        jetstream_post(ALICE, "a3", "Typo in my post about the bridge", T0 + 8),
        jetstream_post(ALICE, "a3", "Corrected: the tunnel is closed too", T0 + 9,
                       operation="update"),
        {"did": ALICE, "time_us": T0 + 10, "kind": "account",
         "account": {"active": True, "did": ALICE, "seq": 2, "time": "x"}},
    ]  # fmt: skip
    with Jetstream(events) as server:
        source = _source(server)
        stream_until(store, [source], lambda: store.log.cursor("bluesky") == str(T0 + 10))
        query = server.requests[0].query
        assert query.getall("wantedCollections") == [
            "app.bsky.feed.post",
            "app.bsky.feed.like",
            "app.bsky.feed.repost",
        ]
        assert "cursor" not in query  # nothing stored yet: start from now
    bridge = store.get(_uri(ALICE, "a1")).post
    assert bridge.metrics.likes == 2 and bridge.metrics.reposts == 1
    assert bridge.url == f"https://bsky.app/profile/{ALICE}/post/a1"
    quake = store.get(_uri(BOB, "b1")).post
    assert quake.author.handle == "bob.bsky.social"  # learned from the identity event
    assert quake.url == "https://bsky.app/profile/bob.bsky.social/post/b1"
    assert quake.lang == "ja" and quake.reply_to == _uri(ALICE, "a1")
    assert store.get(_uri(ALICE, "a2")) is None  # deleted
    assert [h.post.id for h in search(store, "地震").hits] == [_uri(BOB, "b1")]
    assert [h.post.id for h in search(store, "tunnel").hits] == [_uri(ALICE, "a3")]
    assert search(store, "typo").hits == []
    assert source.health.errors == {}


def test_malformed_and_oversized_frames_are_counted_and_skipped(store):
    good = jetstream_post(ALICE, "ok", "a good post after the bad ones", T0 + 1)
    raw = [
        "{not json",
        json.dumps([1, 2, 3]),
        json.dumps({"did": ALICE, "time_us": T0, "kind": "mystery"}),
        json.dumps({"did": ALICE, "time_us": T0, "kind": "commit", "commit": "nope"}),
        json.dumps({"did": ALICE, "time_us": "soon", "kind": "identity", "identity": {}}),
        json.dumps(jetstream_post(ALICE, "x", "y" * 5000, T0)),
        b"\x28\xb5\x2f\xfd binary without compression",
    ]
    with Jetstream([good], raw_frames=raw) as server:
        source = _source(server, max_frame_bytes=4096)
        stream_until(store, [source], lambda: store.get(_uri(ALICE, "ok")) is not None)
    assert source.health.errors == {
        "invalid_json": 1,
        "bad_type": 1,
        "unknown_event": 1,
        "bad_field": 2,
        "oversized": 1,
        "unexpected_binary": 1,
    }
    assert store.stats().posts == 1


def test_reconnects_after_a_cut_mid_frame_and_rewinds_the_cursor(store, monkeypatch):
    posts = [jetstream_post(ALICE, f"p{i}", f"post number {i} about ferries", T0 + i * 1000)
             for i in range(40)]  # fmt: skip
    likes = [jetstream_like(BOB, f"l{i}", ALICE, "p0", T0 + 40_000 + i) for i in range(20)]
    read: list[str | None] = []  # the committed cursor the source found on each connect
    committed = store.cursor

    def cursor(name: str) -> str | None:
        read.append(committed(name))
        return read[-1]

    monkeypatch.setattr(store, "cursor", cursor)
    with Jetstream(posts + likes, cut_after=30) as server:
        source = _source(server, rewind_s=0.01)
        stream_until(store, [source], lambda: store.log.cursor("bluesky") == str(T0 + 40_019))
        assert len(server.cursors) == 2 and len(read) == 2 and read[0] is None
        # ingest may not have committed the last of the 30 events sent before the cut:
        # the reconnect resumes from whichever of them was committed last
        assert read[1] in {str(T0 + i * 1000) for i in range(30)}
        # ... and asks for events from 10 ms before it
        assert server.cursors[1] == int(read[1]) - 10_000
    assert source.health.reconnects == 1
    assert store.stats().posts == 40  # replayed posts are not stored twice
    assert store.get(_uri(ALICE, "p0")).post.metrics.likes == 20


def test_zstd_compressed_frames_with_a_dictionary(store, tmp_path):
    samples = [
        json.dumps(jetstream_post(f"did:plc:{i}", f"k{i}", f"sample {i} text", T0 + i)).encode()
        for i in range(200)
    ]
    dictionary = zstandard.train_dictionary(4096, samples)
    path = tmp_path / "zstd_dictionary"
    path.write_bytes(dictionary.as_bytes())
    compressor = zstandard.ZstdCompressor(dict_data=dictionary)
    events = [jetstream_post(ALICE, "z1", "compressed frames decode fine", T0 + 1)]
    with Jetstream(events, compressor=compressor, raw_frames=[b"not zstd"]) as server:
        source = _source(server, dictionary=path)
        stream_until(store, [source], lambda: store.get(_uri(ALICE, "z1")) is not None)
        assert server.requests[0].query.get("compress") == "true"
    assert source.health.errors == {"bad_compression": 1}
