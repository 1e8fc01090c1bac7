"""Search against a real store (SQLite log + tantivy index + fresh segment)."""

import time
from datetime import UTC, datetime

import pytest

from conftest import feed, post
from ima.query import QuerySyntaxError
from ima.search import search

AS_OF = datetime(2026, 11, 23, tzinfo=UTC)

CORPUS = [
    post(1, "東京で地震がありました。新幹線は運転見合わせです。", author="tokyo_news", lang="ja"),
    post(2, "新幹線が運転を再開しました", "2026-11-22T11:00:00Z", author="jr"),
    post(3, "東京都の天気は晴れ", author="weather"),
    post(4, "Earthquakes shook the city this morning", author="quakes", likes=500),
    post(5, "An earthquake drill at school today", "2026-11-21T08:00:00Z", author="school"),
    post(
        6,
        "The rocket launch slipped to Friday",
        author="spacedesk",
        metrics={"likes": 40, "reposts": 9},
    ),
    post(7, "Launch of the rocket is on Friday", author="bob", source="news"),
    post(8, "Watching the match tonight #football", "2026-11-22T20:00:00Z", author="fan"),
    post(9, "運転見合わせが続いています", author="commuter"),
    post(10, "Great game, what a match @fan", author="carol"),
]


def ids(result):
    return sorted(int(h.post.id.split(":")[1]) for h in result.hits)


@pytest.fixture
def loaded(store):
    feed(store, CORPUS)
    return store


@pytest.mark.parametrize(
    "query, expected",
    [
        ("地震", [1]),
        ("新幹線", [1, 2]),
        ("運転見合わせ", [1, 9]),
        ("京都", []),  # 東京都 is 東京 + 都, not 京都
        ("earthquakes", [4, 5]),  # stemming: earthquakes ~ earthquake
        ("earthquake", [4, 5]),
        ('"rocket launch"', [6]),
        ("rocket launch", [6, 7]),
        ("rocket -friday", []),
        ("match OR earthquake", [4, 5, 8, 10]),
        ("(match OR game) -from:fan", [10]),
        ("from:fan", [8]),
        ("from:@FAN", [8]),
        ("-from:fan match", [10]),
        ("#football", [8]),
        ("@fan", [10]),
        ("lang:ja 新幹線", [1, 2]),
        ("source:news", [7]),
        ("min_faves:100", [4]),
        ("min_reposts:5 rocket", [6]),
        ("earthquake since:2026-11-22", [4]),
        ("earthquake until:2026-11-22", [5]),
        ("新幹線 since:2026-11-22T10:30:00Z", [2]),
    ],
)
def test_operators(loaded, query, expected):
    assert ids(search(loaded, query, as_of=AS_OF, k=20)) == expected


def test_fresh_and_indexed_segments_agree(tmp_path):
    from ima.store import Store

    store = Store(tmp_path / "d", commit_interval=30)  # nothing reaches tantivy for 30 s
    try:
        feed(store, CORPUS)
        assert store.stats().index_lag_posts == len(CORPUS)
        fresh = {
            q: ids(search(store, q, as_of=AS_OF, k=20))
            for q in ("地震", '"rocket launch"', "match -from:fan")
        }
    finally:
        store.close()  # commits the index
    store = Store(tmp_path / "d")
    try:
        assert store.stats().index_lag_posts == 0
        indexed = {q: ids(search(store, q, as_of=AS_OF, k=20)) for q in fresh}
    finally:
        store.close()
    assert fresh == indexed == {"地震": [1], '"rocket launch"': [6], "match -from:fan": [10]}


def test_as_of_hides_the_future(loaded):
    early = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    assert ids(search(loaded, "新幹線", as_of=early)) == [1]
    assert ids(search(loaded, "match", as_of=early)) == [10]


def test_a_later_record_updates_metrics_instead_of_duplicating(loaded):
    feed(
        loaded,
        [
            post(
                6, "The rocket launch slipped to Friday", author="spacedesk", metrics={"likes": 999}
            )
        ],
    )
    result = search(loaded, '"rocket launch"', as_of=AS_OF)
    assert ids(result) == [6]
    assert result.hits[0].post.metrics.likes == 999
    assert loaded.stats().posts == len(CORPUS)


def test_copies_and_reposts_collapse_onto_the_original(store):
    text = "Massive giveaway today only, click the link to claim your free prize"
    flood = [
        post(i, f"{text} {'!' * (i % 3)} http://spam.example/{i}", author=f"bot{i}")
        for i in range(50)
    ]
    flood.append(post(100, text + " now", author="bot100"))  # a near-duplicate
    flood.append(post(101, "", author="fan", repost_of="0"))
    pipeline = feed(store, flood)
    assert pipeline.stats.new == 1 and pipeline.stats.copies == 51
    result = search(store, "giveaway", as_of=AS_OF)
    assert len(result.hits) == 1
    assert result.hits[0].post.copies == 51


def test_different_numbers_are_news_not_copies(store):
    pipeline = feed(
        store,
        [
            post(1, "Score update: the home side now leads 2-1 after a late header", author="a"),
            post(2, "Score update: the home side now leads 3-1 after a late header", author="b"),
        ],
    )
    assert pipeline.stats.new == 2


def test_hits_report_score_parts_and_rank_recent_and_engaged_first(loaded):
    result = search(loaded, "earthquake", as_of=AS_OF)
    assert [h.post.id for h in result.hits] == ["test:4", "test:5"]
    assert set(result.hits[0].parts) == {
        "relevance",
        "recency",
        "engagement",
        "author",
        "spam_penalty",
    }
    assert result.hits[0].parts["recency"] > result.hits[1].parts["recency"]


def test_searchable_as_soon_as_acknowledged(store):
    from ima.ingest import Pipeline

    acked = []
    with Pipeline(store) as pipeline:
        pipeline.submit(
            post(1, "zebra crossing closed"),
            lambda pid, status, err: acked.append(time.perf_counter()),
        )
        while not acked:
            time.sleep(0.001)
        assert ids(search(store, "zebra")) == [1]


@pytest.mark.parametrize(
    "query, column, words",
    [
        ('rocket "launch', 8, "unclosed quote"),
        ("a OR", 3, "OR needs"),
        ("OR a", 1, "OR needs"),
        ("(a b", 1, "unclosed"),
        ("a b)", 4, "without a matching"),
        ("frm:alice", 1, "unknown operator"),
        ("since:yesterday", 1, "ISO 8601"),
        ("min_faves:lots", 1, "whole number"),
        ("-since:2026-01-01", 1, "whole query"),
        ("a OR since:2026-01-01", 6, "whole query"),
        ("since:2026-02-01 until:2026-01-01", 1, "before"),
        ("x" * 1001, 1, "longer than"),
    ],
)
def test_invalid_queries_say_what_and_where(loaded, query, column, words):
    with pytest.raises(QuerySyntaxError) as err:
        search(loaded, query)
    assert err.value.column == column
    assert words in str(err.value)


def test_k_is_bounded(loaded):
    with pytest.raises(ValueError):
        search(loaded, "a", k=0)
    with pytest.raises(ValueError):
        search(loaded, "a", k=1000)
