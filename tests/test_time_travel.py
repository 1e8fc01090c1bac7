"""Property: no search ever returns a post created after `as_of` (fresh or indexed)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import feed, post
from ima.search import search
from ima.store import Store

START = datetime(2026, 11, 20, tzinfo=UTC)
WORDS = ["quake", "train", "rocket", "地震", "新幹線", "match", "rain"]


def _corpus() -> list[dict]:
    records = []
    for i in range(300):
        at = START + timedelta(minutes=17 * i)
        text = f"{WORDS[i % 7]} {WORDS[(i * 3) % 7]} update {i}"
        records.append(post(i, text, at.isoformat(), author=f"user{i % 5}", metrics={"likes": i}))
    return records


@pytest.fixture(scope="module", params=["indexed", "fresh"])
def corpus_store(request, tmp_path_factory):
    interval = 0.01 if request.param == "indexed" else 3600
    store = Store(tmp_path_factory.mktemp(request.param), commit_interval=interval)
    feed(store, _corpus())
    yield store
    store.close()


queries = st.one_of(
    st.sampled_from(WORDS),
    st.tuples(st.sampled_from(WORDS), st.sampled_from(WORDS)).map(" OR ".join),
    st.sampled_from(["", "from:user1", "-from:user2 update", "min_faves:100", '"update 1"']),
    st.tuples(st.sampled_from(WORDS), st.integers(0, 5000)).map(
        lambda t: f"{t[0]} until:{(START + timedelta(minutes=t[1])).isoformat()}"
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=queries, minutes=st.integers(-100, 6000), k=st.integers(1, 100))
def test_nothing_after_as_of(corpus_store, query, minutes, k):
    as_of = START + timedelta(minutes=minutes)
    result = search(corpus_store, query, as_of=as_of, k=k)
    assert all(hit.post.created_at <= as_of for hit in result.hits)
    if minutes < 0:
        assert result.hits == []
