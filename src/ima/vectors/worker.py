"""Embedding in the background, newest and most-engaged posts first, as capacity allows.

The store tells the worker about each committed batch; posts wait in a bounded
priority queue (when it is full, the lowest priority, the oldest and least engaged,
is dropped: a newer post matters more to "what is happening now"). One thread
embeds batches and writes them to the vector index. Embedding is slower than ingest
on a small machine (~100 vs ~20,000 posts/s); `ima stats` shows the share embedded.
Under `ima serve --fleet` (`start(fleet_url)`), the batches go to the fleet's workers,
several at once, spot-checked against the local model, which also embeds whatever no
worker could; the queue's metrics (`EmbeddingMetrics`) then go with the fleet's to
`ima serve`'s /metrics.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ima.vectors.embedder import Embedder
from ima.vectors.index import VectorIndex

log = logging.getLogger(__name__)

#: (seq, created_us, text, engagement) for each new original post
Pending = tuple[int, int, str, int]
_BONUS_US_PER_ENGAGEMENT = 60_000_000  # one like or repost ≈ a minute newer


class EmbeddingWorker:
    def __init__(
        self, index: VectorIndex, embedder: Embedder, *, capacity: int = 20_000, batch: int = 16
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.capacity = capacity
        self.batch = batch
        self.embedded = 0
        self.dropped = 0
        self.failed = 0  # batches whose embedding raised
        self._heap: list[tuple[int, int, int, str]] = []  # (priority, seq, created, text)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ima-embedder", daemon=True)

    def start(self, fleet_url: str | None = None, data_dir: Path | None = None
              ) -> EmbeddingWorker:  # fmt: skip
        """Embed in the background: through the fleet at `fleet_url` when given (its
        metrics and this queue's written into `data_dir` for `ima serve`'s /metrics)."""
        if fleet_url:
            from ima.fleet.embed import fleet_batch, writer_embedder

            self.embedder = writer_embedder(fleet_url, self.embedder, data_dir,
                                            EmbeddingMetrics(self))  # fmt: skip
            self.batch = fleet_batch()  # several jobs at once: as many workers as there are
        self._thread.start()
        return self

    def offer(self, posts: list[Pending]) -> None:
        """Queue posts to embed (called by the store after each commit; never blocks)."""
        with self._cond:
            for seq, created, text, engagement in posts:
                priority = created + min(engagement, 1000) * _BONUS_US_PER_ENGAGEMENT
                item = (priority, seq, created, text)
                if len(self._heap) < self.capacity:
                    heapq.heappush(self._heap, item)
                elif item > self._heap[0]:
                    heapq.heapreplace(self._heap, item)
                    self.dropped += 1
                else:
                    self.dropped += 1
            self._cond.notify()

    def drain(self, progress: Callable[[int], None] | None = None) -> None:
        """Embed everything queued, in this thread (for `ima embed` and `ima eval`)."""
        while (chunk := self._take()) is not None:
            self._embed(chunk)
            if progress:
                progress(self.embedded)

    def _take(self) -> list[tuple[int, int, int, str]] | None:
        with self._cond:
            if not self._heap:
                return None
            chunk = heapq.nlargest(self.batch, self._heap)
            for item in chunk:
                self._heap.remove(item)
            heapq.heapify(self._heap)
            return chunk

    def _embed(self, chunk: list[tuple[int, int, int, str]]) -> None:
        vectors = self.embedder.passages([text for _, _, _, text in chunk])
        self.index.add([c[1] for c in chunk], [c[2] for c in chunk], vectors)
        self.embedded += len(chunk)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
            chunk = self._take()
            if chunk:
                try:
                    self._embed(chunk)
                except Exception:  # an embedding failure must not stop ingest
                    self.failed += 1
                    log.exception("embedding failed for %d posts", len(chunk))

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.ident is not None:
            self._thread.join()
        close = getattr(self.embedder, "close", None)
        if close is not None:
            close()


class EmbeddingMetrics:
    """A worker's progress as Prometheus metrics, read from it when collected: posts
    embedded (by the fleet's workers, or here), waiting, dropped, and failed batches."""

    def __init__(self, worker: EmbeddingWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        worker = self.worker
        posts = CounterMetricFamily("ima_embed_posts", "Posts embedded, by where", labels=["by"])
        posts.add_metric(["fleet"], getattr(worker.embedder, "remote", 0))
        posts.add_metric(["here"], getattr(worker.embedder, "fallback", worker.embedded))
        yield posts
        yield GaugeMetricFamily("ima_embed_queue_posts", "Posts waiting to be embedded",
                                value=len(worker._heap))  # fmt: skip
        yield CounterMetricFamily("ima_embed_dropped_posts", "Posts dropped from a full queue",
                                  value=worker.dropped)  # fmt: skip
        yield CounterMetricFamily("ima_embed_failed_batches", "Batches whose embedding failed",
                                  value=worker.failed)  # fmt: skip
