"""A store's vector side: its index, an embedder, and the worker that keeps up."""

from __future__ import annotations

import logging
import time

from ima.ingest.lang import detect
from ima.post import Flat
from ima.store import Entry, Store
from ima.vectors.embedder import Embedder
from ima.vectors.index import Ranked, VectorIndex
from ima.vectors.worker import EmbeddingWorker

log = logging.getLogger(__name__)

FILE = "vectors.sqlite3"
#: posts a question embeds itself, at most, when the background is behind (multilingual-e5
#: small: ~50–80 posts/s on two idle cores, so about a quarter of a second; on a machine
#: loaded far past its cores, seconds)
LAZY = 16
LAZY_SCAN = 256  # among the window's newest this many (a bounded read of the log)
LAZY_BATCH = 4
LAZY_S = 1.0  # and no more time than this, once a batch has started


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
        their similarity. The window's newest posts in another language than the
        question's are embedded first if the background has not reached them yet: such a
        post shares no word with the question, so only its vector can find it (one in the
        question's language is found by its words)."""
        try:
            self.catch_up(low_us, high_us, besides=detect(question))
        except Exception:  # a vector not written now is written by the background later
            log.warning("embedding the window's newest posts failed", exc_info=True)
        scored = self.index.scored(self.embedder.query(question), low_us, high_us, k)
        found = self.store.fetch([seq for _, seq in scored])
        near = [(found[seq].post, score) for score, seq in scored if seq in found]
        return Ranked((p for p, _ in near), {p.id: score for p, score in near})

    def catch_up(self, low_us: int, high_us: int, besides: str = "", limit: int = LAZY) -> int:
        """Embed up to `limit` of the window's newest `LAZY_SCAN` originals that have no
        vector yet and are not in the language `besides`, newest first, a few at a time
        until `LAZY_S` has passed (bounded work and time: the background embeds the
        rest); returns how many."""
        started = time.monotonic()
        newest = self.store.newest_originals(low_us, high_us, LAZY_SCAN)
        done = self.index.embedded([sp.seq for sp in newest])
        todo = [sp for sp in newest if sp.seq not in done and sp.post.lang != besides][:limit]
        count = 0
        for i in range(0, len(todo), LAZY_BATCH):
            if time.monotonic() - started > LAZY_S:
                break
            chunk = todo[i : i + LAZY_BATCH]
            vectors = self.embedder.passages([sp.post.text for sp in chunk])
            self.index.add([sp.seq for sp in chunk],
                           [int(sp.post.created_at.timestamp() * 1e6) for sp in chunk],
                           vectors)  # fmt: skip
            count += len(chunk)
        return count

    def share_embedded(self) -> float:
        originals = self.store.counts()["originals"]
        return self.index.count() / originals if originals else 0.0

    def close(self) -> None:
        if self._following:
            self.store.listeners.remove(self._committed)
            self.worker.stop()
        self.index.close()
