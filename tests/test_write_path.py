"""The write path's parts that other tests reach only through search: what crosses
from a preparing process, flat normalization, the fresh segment, duplicate lookups."""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime

from conftest import feed, post
from ima.ingest.changes import Cursor, Delete, Engagement
from ima.ingest.dedup import DedupIndex, fingerprints
from ima.ingest.normalize import JsonLine, RecordError, normalize, normalize_flat
from ima.ingest.prepare import Payloads, Prepared, PreparedBatch, prepare_batch
from ima.post import flatten
from ima.search import search
from ima.store import AllOf, Store, Terms
from ima.store.fresh import FreshDoc, FreshSegment, facet, term_line

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_prepared_batches_cross_processes_unchanged():
    records = [
        JsonLine(1, b'{"id": "1", "text": "Storm warning for the coast", "created_at": '
                    b'"2026-11-22T10:00:00Z", "author": "met"}'),
        post(2, "The rocket launch slipped to Friday #space"),
        JsonLine(3, b"not json"),
        Delete("test:9"),
        Engagement("test:2", likes=3),
        Cursor("test", "42"),
    ]  # fmt: skip
    payload = Payloads((record, "test", None) for record in records)
    sent = pickle.loads(pickle.dumps(payload))
    assert sent == payload and [type(p[0]) for p in sent] == [type(r) for r in records]
    prepared = prepare_batch(sent, NOW)
    back = pickle.loads(pickle.dumps(prepared))
    assert isinstance(back, PreparedBatch) and back[:2] == prepared[:2]
    assert back[3:] == prepared[3:] and str(back[2]) == str(prepared[2])
    assert [type(item) for item in back] == [type(item) for item in prepared]
    first = back[0]
    assert isinstance(first, Prepared) and first.fingerprint is None  # five words: too short
    assert first.terms.split() == ["storm", "warn", "for", "the", "coast"]
    assert type(back[1].fingerprint) is type(prepared[1].fingerprint)
    assert isinstance(back[2], RecordError) and back[2].kind == "invalid_json"


def test_flat_normalization_is_the_flattened_post():
    records = [
        post(1, "Quake near #Tokyo @JMA https://x.example/a", likes=3, lang="ja"),
        {"id": "2", "text": "hello", "created_at": 1764000000, "author": {"handle": "@bob",
         "name": "Bob", "followers": "12"}, "metrics": {"likes": 5, "views": 9},
         "repost_of": "1", "url": "javascript:alert(1)"},
    ]  # fmt: skip
    for record in records:
        dropped_flat: list[str] = []
        dropped_post: list[str] = []
        flat = normalize_flat(record, default_source="s", now=NOW, dropped=dropped_flat)
        assert flat == flatten(normalize(record, default_source="s", now=NOW, dropped=dropped_post))
        assert dropped_flat == dropped_post
    assert normalize_flat(records[1], default_source="s", now=NOW)[2:5] == ("bob", "Bob", 12)


def _docs(texts: list[str], *, first_seq: int = 1, analyzed: bool) -> list[FreshDoc]:
    return [
        FreshDoc(seq, 1000 + seq, text, [facet("lang", "en")],
                 term_line(text) if analyzed else None)
        for seq, text in enumerate(texts, first_seq)
    ]  # fmt: skip


def test_fresh_segment_finds_the_same_with_terms_given_or_not():
    texts = ["the rocket launch slipped", "launch of the rocket", "rocket rocket launch pad"]
    hits = []
    for analyzed in (True, False):
        segment = FreshSegment()
        docs = _docs(texts, analyzed=analyzed)
        segment.append(docs[:1])
        segment.append(docs[1:])
        phrase = Terms("text", ("rocket", "launch"))
        found = {
            "phrase": sorted(seq for _, seq in segment.search(phrase, 0, None, 10**9)),
            "words": sorted(seq for _, seq in segment.search(
                AllOf((Terms("text", ("rocket",)), Terms("lang", ("en",))), ()), 0, None, 10**9)),
            "after": sorted(seq for _, seq in segment.search(None, 2, None, 10**9)),
            "window": sorted(seq for _, seq in segment.search(None, 0, 1002, 1002)),
        }  # fmt: skip
        assert segment.doc_freq("rocket") == 3 and segment.doc_freq("pad") == 1
        assert segment.pending(1) == 2 and segment.pending(3) == 0 and len(segment) == 3
        hits.append(found)
    assert hits[0] == hits[1] == {"phrase": [1, 3], "words": [1, 2, 3], "after": [3],
                                  "window": [2]}  # fmt: skip


def test_fresh_segments_are_dropped_once_indexed(tmp_path):
    store = Store(tmp_path / "d", commit_interval=0.05)
    try:
        feed(store, [post(i, f"harbour crane number {i} moved") for i in range(300)])
        deadline = datetime.now(UTC).timestamp() + 10
        while store.stats().fresh_segments and datetime.now(UTC).timestamp() < deadline:
            store.term_stats([])  # nothing to wait on but the indexer's commit
        stats = store.stats()
        assert stats.fresh_segments == 0 and stats.index_lag_posts == 0
        assert len(search(store, "crane", as_of=NOW, k=50).hits) == 50
    finally:
        store.close()


BRIDGE = (
    "officials confirm the old bridge on route nine is closed to all traffic until "
    "monday morning while engineers inspect the damage left by the storm last night"
)


def remembered(texts: list[str]) -> DedupIndex:
    """A dedup index in generations of ten originals that has seen `texts` (post `pN`)."""
    index = DedupIndex(capacity=8 * 10)
    for n, fp in enumerate(fingerprints(texts)):
        assert fp is not None
        if index.original_of(fp) is None:
            index.remember(fp, f"p{n}")
    return index


def test_a_copy_is_found_in_an_older_generation_and_a_stranger_in_none():
    base = BRIDGE
    index = remembered([base] + [f"unrelated report {i} about weather traffic and trains today"
                                 for i in range(40)])  # fmt: skip
    assert len(index._tables) > 2  # the original is no longer in the newest table
    near, exact, stranger = fingerprints([
        base + " again", base,
        "a completely different sentence with enough words in it to count",
    ])  # fmt: skip
    assert index.original_of(exact) == "p0"
    assert index.original_of(near) == "p0"
    assert index.original_of(stranger) is None


def test_a_screened_batch_finds_the_originals_that_post_by_post_lookups_find():
    base = BRIDGE
    texts = [base] + [f"unrelated report {i} about weather traffic and trains today" for i in
                      range(44)]  # fmt: skip
    texts.append("the city council approved a new budget for parks and libraries this evening")
    index = remembered(texts)
    deadline = time.monotonic() + 10
    while index._sealed[1] < index._newest - 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # the sealed tables' keys are sorted in another thread
    assert index._newest >= 3
    batch = fingerprints([
        base, base + " again",  # in the oldest table, which the screen covers
        texts[-1],  # in the newest table, which it does not (it is still filling)
        *[f"a different sentence number {i} with enough words in it" for i in range(16)],
    ])  # fmt: skip
    screen = index.screen(batch)
    assert screen is not None and screen.upto == index._newest - 1
    expected = ["p0", "p0", "p45"] + [None] * 16
    assert [index.original_of(fp) for fp in batch] == expected
    assert [index.original_of(fp, screen) for fp in batch] == expected
    for n, fp in enumerate(fingerprints([f"later news {i} on the ferry timetable and buses"
                                         for i in range(12)])):  # fmt: skip
        index.remember(fp, f"later{n}")  # the table the screen did not cover is sealed
    assert index.original_of(batch[2], screen) == "p45"


def test_a_reader_hears_each_new_original_once_however_far_the_index_got(tmp_path):
    writer = Store(tmp_path / "d", commit_interval=0.05, searchable=False)
    reader = Store(tmp_path / "d")
    follower = Store(tmp_path / "d", searchable=False)  # hears of posts once indexed
    heard: list[int] = []
    indexed: list[int] = []
    reader.listeners.append(lambda originals: heard.extend(seq for seq, _ in originals))
    follower.listeners.append(lambda originals: indexed.extend(seq for seq, _ in originals))
    try:
        for n in range(6):
            records = [post(f"{n}-{i}", f"ferry timetable {n} changed, line {i}")
                       for i in range(40)]  # fmt: skip
            records.insert(1, post(f"{n}-copy", f"ferry timetable {n} changed, line 0"))  # a copy
            feed(writer, records)
            deadline = time.monotonic() + 10
            while n % 2 and writer.lexical.committed_seq < writer.last_seq:
                assert time.monotonic() < deadline  # the index commits past the reader's look
                time.sleep(0.01)
            reader.refresh()
            follower.refresh()
            assert len(search(reader, f'"timetable {n}"', as_of=NOW, k=100).hits) == 40
            assert indexed == [seq for seq, _, _ in writer.changes_since(0)
                               if seq <= follower.lexical.committed_seq]  # fmt: skip
        originals = [seq for seq, _, _ in writer.changes_since(0)]
        assert heard == originals and len(originals) == 6 * 40
        assert follower.stats().fresh_segments == 0
        assert writer.stats().fresh_segments == 0  # it only writes: nothing searched here
    finally:
        follower.close()
        reader.close()
        writer.close()


def test_terms_analyzed_at_ingest_are_stored_and_an_older_log_still_reads(tmp_path):
    import sqlite3

    store = Store(tmp_path / "d", commit_interval=0.05)
    try:
        feed(store, [post(1, "Harbour cranes stopped by the strike #ports")])
        stored = store.get("test:1")
        assert stored is not None and stored._terms == term_line(stored.indexed_text).split()
    finally:
        store.close()
    # a log written before terms were stored: the column is added, old rows analyzed on read
    with sqlite3.connect(tmp_path / "d" / "log.sqlite3") as conn:
        conn.execute("ALTER TABLE posts DROP COLUMN terms")
    store = Store(tmp_path / "d", commit_interval=0.05)
    try:
        feed(store, [post(2, "Harbour cranes moving again after the strike")])
        old, new = store.get("test:1"), store.get("test:2")
        assert old is not None and old._terms is None and "crane" in old.terms
        assert new is not None and new._terms is not None and "crane" in new.terms
        assert {h.post.id for h in search(store, "harbour strike", as_of=NOW).hits} == {
            "test:1", "test:2"}  # fmt: skip
    finally:
        store.close()
