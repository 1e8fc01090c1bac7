"""A store's vector side: its index, an embedder, and the worker that keeps up."""

from __future__ import annotations

from ima.post import Flat
from ima.store import Entry, Store
from ima.vectors.embedder import Embedder
from ima.vectors.index import Ranked, VectorIndex
from ima.vectors.worker import EmbeddingWorker

FILE = "vectors.sqlite3"


class Vectors:
    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self.index = VectorIndex(store.data_dir / FILE, embedder.dim)
        self.worker = EmbeddingWorker(self.index, embedder)
        self._following = False

    @classmethod
    def open(cls, store: Store) -> Vectors | None:
        """The vectors another process embeds into `store`, to search (None if the
        embedder does not load: answers then use lexical search only)."""
        from ima.vectors.embedder import default_embedder

        embedder = default_embedder()
        return cls(store, embedder) if embedder is not None else None

    def follow(self, fleet_url: str | None = None) -> Vectors:
        """Embed new posts in the background from now on (through the fleet at
        `fleet_url`, when given)."""
        self.store.listeners.append(self._committed)
        self.worker.start(fleet_url, self.store.data_dir)
        self._following = True
        return self

    def _committed(self, posts: list[tuple[int, Entry]]) -> None:
        self.worker.offer([
            (seq, e.flat[Flat.CREATED_US], e.flat[Flat.TEXT], sum(e.flat[Flat.METRICS]))
            for seq, e in posts
        ])  # fmt: skip

    def backfill(self, limit: int) -> int:
        """Queue the newest `limit` stored originals not embedded yet; returns how many."""
        recent = self.store.recent_originals(limit)
        done = self.index.embedded([sp.seq for sp in recent])
        todo = [
            (sp.seq, int(sp.post.created_at.timestamp() * 1e6), sp.post.text,
             sp.post.metrics.likes + sp.post.metrics.reposts)
            for sp in recent
            if sp.seq not in done
        ]  # fmt: skip
        self.worker.offer(todo)
        return len(todo)

    def semantic(self, question: str, low_us: int, high_us: int, k: int) -> Ranked:
        """Posts in the window nearest to the question in meaning, nearest first, with
        their similarity."""
        scored = self.index.scored(self.embedder.query(question), low_us, high_us, k)
        found = self.store.fetch([seq for _, seq in scored])
        near = [(found[seq].post, score) for score, seq in scored if seq in found]
        return Ranked((p for p, _ in near), {p.id: score for p, score in near})

    def share_embedded(self) -> float:
        originals = self.store.counts()["originals"]
        return self.index.count() / originals if originals else 0.0

    def close(self) -> None:
        if self._following:
            self.store.listeners.remove(self._committed)
            self.worker.stop()
        self.index.close()
