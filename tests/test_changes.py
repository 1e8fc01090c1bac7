"""Deletes, edits and engagement counts from live sources, applied in stream order."""

from conftest import feed, post
from ima.ingest import Pipeline
from ima.ingest.changes import Delete, Edit, Engagement
from ima.search import search


def _ids(store, query: str) -> list[str]:
    return sorted(h.post.id for h in search(store, query).hits)


def test_a_delete_removes_the_post_from_search_with_its_batch(store):
    feed(store, [post(1, "volcano erupts near the coast"), post(2, "volcano ash cloud")])
    assert _ids(store, "volcano") == ["test:1", "test:2"]
    outcomes = []
    with Pipeline(store) as pipeline:
        pipeline.submit(Delete("test:1"), lambda *o: outcomes.append(o))
    assert outcomes == [("test:1", "deleted", None)]
    assert _ids(store, "volcano") == ["test:2"]  # before the index has committed
    assert store.get("test:1") is None
    store.close()  # the index commits the deletion; a reopened store agrees
    from ima.store import Store

    reopened = Store(store.data_dir)
    try:
        assert _ids(reopened, "volcano") == ["test:2"]
        assert reopened.lexical.searcher.num_docs == 1
    finally:
        reopened.close()


def test_a_deleted_post_replayed_is_not_stored_again(store):
    feed(store, [post(1, "transient post about ferries")])
    feed(store, [Delete("test:1")])
    pipeline = feed(store, [post(1, "transient post about ferries")])
    assert pipeline.stats.outcomes["deleted"] == 1
    assert _ids(store, "ferries") == []


def test_create_then_delete_in_one_batch_stores_nothing(store):
    outcomes = []
    with Pipeline(store, max_wait=0.5) as pipeline:
        pipeline.submit_many(
            [post(7, "short lived message about buses"), Delete("test:7")],
            lambda *o: outcomes.append(o[1]),
            source="test",
        )
    assert outcomes == ["deleted", "deleted"]
    assert store.stats().posts == 0 and _ids(store, "buses") == []


def test_an_edit_replaces_the_text_in_search(store):
    feed(store, [post(3, "the match starts at 18:00 in Osaka")])
    pipeline = feed(store, [Edit(post(3, "the match is postponed, rain in Osaka"))])
    assert pipeline.stats.outcomes["edited"] == 1
    assert _ids(store, "postponed") == ["test:3"]
    assert _ids(store, "18:00") == []
    assert store.stats().posts == 1
    # an edit of a post never seen is stored as new
    feed(store, [Edit(post(4, "fresh edit of an unseen post about trams"))])
    assert _ids(store, "trams") == ["test:4"]


def test_engagement_adds_to_stored_metrics_and_ignores_unknown_posts(store):
    feed(store, [post(5, "cats are great", likes=2)])
    feed(store, [Engagement("test:5", likes=1), Engagement("test:5", likes=1, reposts=1)])
    feed(store, [Engagement("test:unknown", likes=1)])
    metrics = store.get("test:5").post.metrics
    assert (metrics.likes, metrics.reposts) == (4, 1)
    assert store.get("test:unknown") is None


def test_deleting_a_copy_lowers_the_originals_count(store):
    text = "Breaking: the bridge on route 9 is closed for repairs until further notice"
    feed(store, [post(1, text), post(2, text, author="bob"), post(3, text, author="carol")])
    assert store.get("test:1").post.copies == 2
    feed(store, [Delete("test:2")])
    assert store.get("test:1").post.copies == 1
