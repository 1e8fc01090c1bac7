"""The store's candidate cut depends only on the posts and the statistics it is given:
it equals a brute-force cut over every matching post (BM25 by ima, ties to the later
log position), whatever tantivy's own statistics and however many posts tie."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import feed, post
from ima.planner import plan
from ima.post import to_us
from ima.query import parse
from ima.store import Relevance, Statistics, Store
from ima.text import analysis

WORDS = "rain storm quake tokyo train power".split()
HIGH = 2**62


def _indexed(store: Store) -> None:
    deadline = time.monotonic() + 30
    while store.stats().index_lag_posts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.stats().index_lag_posts == 0


def _tying_posts() -> list[dict]:
    """Short posts from six words (many share terms and length: they tie), a few long
    ones, and runs of posts created at the same second."""
    rng = random.Random(3)
    records = []
    for i in range(600):
        words = rng.choices(WORDS, k=rng.choice([1, 2, 2, 3, 3, 3, 12]))
        second = rng.randrange(0, 3600, 7 if i % 3 else 1)
        at = f"2026-11-22T{10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
        records.append(post(i, f"{' '.join(words)} x{i}", at=at, author=f"u{i % 5}"))
    return records


@pytest.fixture(scope="module")
def ties(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("ties") / "data", commit_interval=0.05)
    feed(store, _tying_posts())
    _indexed(store)
    yield store
    store.close()


def _wanted(text: str) -> list[str]:
    return [t for w in text.split() if not w.startswith(("-", "from:")) for t in analysis.terms(w)]


def _brute(store: Store, text: str, limit: int, stats: Statistics | None) -> set[int]:
    """The cut by definition, from every post the query matches."""
    wanted = _wanted(text)
    matches = store.candidates(plan(parse(text).root), None, HIGH, 1000, wanted).posts
    assert len(matches) < 1000  # (every match)
    stats = stats or store.statistics(wanted)
    relevance = Relevance(wanted, stats)
    best = sorted(matches, key=lambda sp: (relevance(sp.terms), sp.seq))[-limit:]
    newest = sorted(matches, key=lambda sp: (to_us(sp.post.created_at), sp.seq))[-limit:]
    return {sp.seq for sp in (*best, *newest)}


_texts = st.builds(
    lambda words, author, minus: " ".join(
        [*words, *([f"from:{author}"] if author else []), *([f"-{minus}"] if minus else [])]
    ),
    st.lists(st.sampled_from(WORDS), min_size=0, max_size=3),
    st.sampled_from([None, "u1", "u3"]),
    st.sampled_from([None, *WORDS]),
).filter(lambda text: text and not text.startswith("-"))


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=_texts, limit=st.integers(1, 60), skew=st.sampled_from([None, 0.3, 1.0, 4.0]))
def test_the_cut_is_the_brute_force_cut(ties, text, limit, skew):
    wanted = _wanted(text)
    stats = None
    if skew is not None:  # statistics of a collection unlike this store (a partition's view)
        own = ties.statistics(wanted)
        stats = Statistics(
            own.doc_count * 5,
            {t: int(n * skew) + 1 for t, n in own.doc_freq.items()},
            own.length_docs * 5,
            int(own.length_terms * 5 * skew) + 1,
        )
    found = ties.candidates(plan(parse(text).root), None, HIGH, limit, wanted, stats)
    assert {sp.seq for sp in found.posts} == _brute(ties, text, limit, stats)


@pytest.mark.parametrize("text", ["rain", "storm quake", "train from:u1", "power -rain"])
def test_the_cut_over_posts_not_yet_indexed_is_the_brute_force_cut(tmp_path, text):
    store = Store(tmp_path / "data", commit_interval=3600)  # all in the fresh segment
    try:
        feed(store, _tying_posts())
        assert store.stats().index_lag_posts == 600
        found = store.candidates(plan(parse(text).root), None, HIGH, 20, _wanted(text))
        assert {sp.seq for sp in found.posts} == _brute(store, text, 20, None)
    finally:
        store.close()


def test_the_newest_posts_sharing_a_second_are_cut_by_log_position(tmp_path):
    store = Store(tmp_path / "data", commit_interval=0.05)
    try:
        feed(store, [post(i, f"rain {i}", at="2026-11-22T10:00:00Z") for i in range(40)])
        _indexed(store)
        found = store.candidates(plan(parse("rain").root), None, HIGH, 5, [])
        seqs = sorted(sp.seq for sp in store.candidates(None, None, HIGH, 1000).posts)
        assert sorted(sp.seq for sp in found.posts) == seqs[-5:]
    finally:
        store.close()


def test_a_store_knows_its_lengths(ties):
    stats = ties.statistics(["rain"])
    total = sum(len(sp.terms) for sp in ties.recent_originals(10_000))
    assert (stats.length_docs, stats.length_terms) == (stats.doc_count, total)


def test_a_reader_knows_the_lengths_after_each_commit_without_walking_the_dictionary(
    tmp_path, monkeypatch
):
    """Finding a term in tantivy's dictionary walks all of it (tens of ms on a big
    index, at a reader's first search after each of the writer's commits): the lengths
    come from a term of the query or of the newest indexed post."""
    from ima.store.lexical import LexicalIndex

    writer = Store(tmp_path / "data", commit_interval=0.05)
    # read-only (the writer holds the index), one for each way a term is found: each
    # keeps the lengths of its searcher once found
    readers = {"rain": Store(tmp_path / "data"), "zqabsent": Store(tmp_path / "data")}
    try:
        feed(writer, _tying_posts())
        _indexed(writer)

        def walked(_searcher):  # a generator, as the real one: called, nothing is read
            raise AssertionError("the term dictionary was walked")
            yield

        monkeypatch.setattr(LexicalIndex, "_frequent_terms", staticmethod(walked))
        total = sum(len(sp.terms) for sp in writer.recent_originals(10_000))
        for round_ in range(3):  # each round, a commit: a new searcher, lengths anew
            for term, reader in readers.items():  # a query's term; one the index lacks
                reader.refresh()
                stats = reader.statistics([term])
                assert (stats.length_docs, stats.length_terms) == (stats.doc_count, total)
            feed(writer, [post(10_000 + round_, "storm over tokyo", at="2026-11-22T12:00:00Z")])
            total += 3
            _indexed(writer)
    finally:
        for reader in readers.values():
            reader.close()
        writer.close()
