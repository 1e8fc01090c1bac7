"""The store: the log, the lexical index derived from it, and the fresh segment between.

Life of a batch: `write` commits it to the log (now it is *acknowledged*: durable),
appends it to the fresh segment (now it is *searchable*), and queues it for the
indexer thread, which adds it to tantivy and commits every `commit_interval`
(now it is *indexed*; fresh segments wholly indexed are dropped). The indexer queue is
bounded, so a slow index pushes back on ingest instead of growing memory.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from ima.post import Flat
from ima.store.batch import Batch, Commit, DeadLetter, Entry
from ima.store.fresh import FreshDoc, FreshSegment, facet, term_line
from ima.store.lexical import LexicalIndex, ReadOnlyIndexError, lower_priority
from ima.store.log import PostLog, StoredPost
from ima.store.plan import Plan
from ima.store.relevance import Relevance, Statistics, idf, pool_bound

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True, slots=True)
class _Forget:
    """For the indexer: log positions whose posts were removed."""

    seqs: list[int]


_SEGMENT_DOCS = 20_000  # a fresh segment takes new posts up to this many, or commit_interval
_POOL_GROWTH = 3  # a relevance pool starts at 2 × limit and grows 4× at most this often


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a store holds and how far its index has come (`ima stats`, `/healthz`)."""

    posts: int  # in the log, copies included
    originals: int  # searchable ones
    copies: int  # collapsed onto an original
    log_seq: int
    indexed_seq: int
    index_lag_posts: int  # searchable from memory, not in the index yet
    fresh_segments: int
    index_commits: int
    disk_bytes: int
    errors: dict[str, int]  # records refused (or fields dropped), by kind
    dead_letters: int  # refused records kept with their raw bytes

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Candidates:
    """Posts matching a plan, with the term statistics ranking needs; `missing`: the
    ranges of creation times (µs; None where open) a partitioned store could not search
    in time, empty when the answer is complete."""

    posts: list[StoredPost]
    doc_count: int
    doc_freq: dict[str, int]
    missing: tuple[tuple[int | None, int | None], ...] = ()


def _disk_bytes(directory: Path) -> int:
    """Bytes under `directory`; files renamed or removed meanwhile (index segments
    merging, marks being replaced) are skipped, not an error."""
    total = 0
    for path in directory.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total


_AUTHOR, _LANG, _SOURCE, _TAG, _MENTION = (
    facet(field, "") for field in ("author", "lang", "source", "tags", "mentions")
)


def _fresh_doc(seq: int, flat: tuple, text: str, terms: str | None = None) -> FreshDoc:
    """From a post in flat form (`ima.post.flatten`), as ingest carries it. (Facets by
    prefix, and lists only for the posts that have tags or mentions: the committing
    thread builds one of these a post.)"""
    facets = [_AUTHOR + flat[Flat.HANDLE].lower(), _LANG + flat[Flat.LANG],
              _SOURCE + flat[Flat.SOURCE]]  # fmt: skip
    if tags := flat[Flat.HASHTAGS]:
        facets += [_TAG + tag for tag in tags.split()]
    if mentions := flat[Flat.MENTIONS]:
        facets += [_MENTION + name for name in mentions.split()]
    return FreshDoc(seq, flat[Flat.CREATED_US], text, facets, terms)


class Store:
    """Durable log + near-real-time search over it. Thread-safe for one writer, many readers."""

    def __init__(
        self,
        data_dir: Path,
        *,
        commit_interval: float = 1.0,
        index_queue_batches: int = 64,
        synchronous: str = "NORMAL",
        searchable: bool = True,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.log = PostLog(data_dir / "log.sqlite3", synchronous=synchronous)
        self.lexical = LexicalIndex(data_dir / "index")
        self.commit_interval = commit_interval
        #: False: no fresh segment, a post is searchable here once indexed. For a store
        #: that only writes (`ima serve`'s writer, `ima stream`: other processes search),
        #: and for a reader that can wait for the index (trends): it follows the log as
        #: far as the index has come, no further
        self.searchable = searchable
        self._view_lock = threading.Lock()
        self._fresh: tuple[FreshSegment, ...] = ()
        self._indexed_seq = self.lexical.committed_seq
        self._searcher = self.lexical.searcher
        self._queue: queue.Queue = queue.Queue(maxsize=index_queue_batches)
        self.index_commits = 0
        #: relevance cuts that stopped at the largest pool before proving themselves
        self.relevance_cuts_capped = 0
        #: called with (seq, entry) of the new originals of each commit: this store's
        #: own, or, read-only, those `refresh` caught up with
        self.listeners: list[Callable[[list[tuple[int, Entry]]], None]] = []
        if self.writable:
            self.log.expect_writes()
        self._catch_up()
        self._indexer = self._start_indexer() if self.writable else None

    # -- writing -------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self.lexical.writable

    def _catch_up(self) -> None:
        """Index what the log has past the index's high-water mark (after a crash).

        Read-only (another process writes), the tail is served as a fresh segment instead,
        or, not searchable, left until the index has it.
        """
        mark = self.lexical.committed_seq
        if self.log.last_seq <= mark:
            return
        if not self.lexical.writable:
            if not self.searchable:
                self.log.last_seq = mark
                return
            tail = [_fresh_doc(*row) for row in self.log.scan(mark)]
            if tail:
                self._add_fresh(tail)
            return
        self.lexical.forget_after(mark)
        added = self.lexical.add(_fresh_doc(*row) for row in self.log.scan(mark))
        self.lexical.commit(self.log.last_seq)
        self._publish()
        log.info("index caught up with the log: %d posts after seq %d", added, mark)

    def write(self, batch: Batch) -> Commit:
        """Commit one batch to the log, then make its originals searchable (from memory at
        once, or, not `searchable`, once the indexer has them).

        Removed posts leave search with this commit: reads go through the log, which no
        longer has them; the index forgets them at its next commit.
        """
        if not self.writable:
            raise ReadOnlyIndexError("another process is writing this store")
        first = self.log.last_seq + 1
        entries = batch.entries
        removed = self.log.append(first, batch)
        if removed:
            self._queue.put(_Forget(removed))
        docs = [
            _fresh_doc(first + i, e.flat, e.text, e.terms)
            for i, e in enumerate(entries)
            if e.flat[Flat.DUPLICATE_OF] is None
        ]
        if docs:
            if self.searchable:
                self._add_fresh(docs)
            self._queue.put(docs)
        if self.listeners:  # now that the batch is searchable
            self._tell(
                [(first + i, e) for i, e in enumerate(entries) if e.flat[Flat.DUPLICATE_OF] is None]
            )
        return Commit(first, len(entries), removed)

    def _tell(self, originals: list[tuple[int, Entry]]) -> None:
        """Hand the listeners a batch's new originals."""
        if not originals:
            return
        for listener in self.listeners:
            try:  # a follower's failure (trends, vectors) must not stop ingest
                listener(originals)
            except Exception:
                log.exception("a listener failed on a committed batch")

    def _add_fresh(self, docs: list[FreshDoc]) -> None:
        """Make docs searchable from memory (the caller is the store's one writer)."""
        for doc in docs:  # analyzed before the lock is taken, unless ingest did it
            if doc.terms is None:
                doc.terms = term_line(doc.text)
        with self._view_lock:
            current = self._fresh[-1] if self._fresh else None
            if current is None or (
                time.monotonic() - current.started > self.commit_interval
                or len(current) >= _SEGMENT_DOCS
            ):
                current = FreshSegment()
                self._fresh = (*self._fresh, current)
            # under the lock: `_publish` must not drop a segment while it grows
            current.append(docs)

    def refresh(self) -> None:
        """Read-only: catch up with what the writing process has committed since, so a
        store opened in another process (an answerer) searches the newest posts too.

        Posts past our last look at the log join a fresh segment (those the writer's
        index has not committed yet); when the writer's index has committed further, the
        reader reloads and drops what it now covers. Not searchable, it follows the log
        only as far as the index. Listeners hear the new originals once searchable here.
        Not thread-safe: one thread of the reading process calls it, between searches.
        """
        if self.writable:
            return
        if self.lexical.follow():
            self._publish()
        looked = self.log.last_seq
        if not self.searchable:
            upto = self._indexed_seq
            if upto <= looked:
                return
            rows = list(self.log.scan(looked, upto))
            self.log.last_seq = upto
        else:
            newest = self.log.newest_seq()
            if newest == looked:
                return
            followed = max([self._indexed_seq, *(segment.max_seq for segment in self._fresh)])
            rows = list(self.log.scan(min(followed, looked)))
            docs = [_fresh_doc(*row) for row in rows if row[0] > followed]
            if docs:
                self._add_fresh(docs)
            self.log.last_seq = max(newest, rows[-1][0]) if rows else newest
        self._tell([(seq, Entry(flat, text, terms)) for seq, flat, text, terms in rows
                    if seq > looked])  # fmt: skip

    def _start_indexer(self) -> threading.Thread:
        thread = threading.Thread(target=self._index_loop, name="ima-indexer", daemon=True)
        thread.start()
        return thread

    def _publish(self) -> None:
        with self._view_lock:
            dropped = self._fresh
            self._searcher = self.lexical.searcher
            self._indexed_seq = self.lexical.committed_seq
            self._fresh = tuple(c for c in self._fresh if c.max_seq > self._indexed_seq)
        del dropped  # segments the index now covers are freed here, not under the lock

    def _index_loop(self) -> None:
        lower_priority({threading.get_native_id()})  # commits run here
        pending_seq = self.lexical.committed_seq
        forgotten = False  # deletions waiting for a commit
        deadline: float | None = None
        stopping = False
        while not stopping:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                stopping = True
            elif isinstance(item, _Forget):
                self.lexical.delete(item.seqs)
                forgotten = True
                if deadline is None:
                    deadline = time.monotonic() + self.commit_interval
            elif isinstance(item, list):
                self.lexical.add(item)
                pending_seq = max(pending_seq, item[-1].seq)
                if deadline is None:
                    deadline = time.monotonic() + self.commit_interval
            due = deadline is not None and time.monotonic() >= deadline
            dirty = forgotten or pending_seq > self.lexical.committed_seq
            if dirty and (due or stopping):
                try:
                    self.lexical.commit(pending_seq)
                except Exception:  # the log still has everything; retry next round
                    log.exception("index commit failed; will retry")
                    continue
                self.index_commits += 1
                forgotten = False
                self.log.checkpoint()
                self._publish()
                deadline = None

    def close(self) -> None:
        """Finish indexing what is queued, commit, and close."""
        if self._indexer is not None and self._indexer.is_alive():
            self._queue.put(_STOP)
            self._indexer.join()
        self.lexical.close()
        self.log.close()

    def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the lexical index from the log; returns how many posts were indexed."""
        if not self.writable:
            raise ReadOnlyIndexError("another process is writing this store")
        self._queue.put(_STOP)
        self._indexer.join()
        self.lexical.clear()
        done = 0
        batch: list[FreshDoc] = []
        for row in self.log.scan(0):
            batch.append(_fresh_doc(*row))
            if len(batch) >= 10_000:
                done += self.lexical.add(batch)
                batch.clear()
                if progress:
                    progress(done)
        done += self.lexical.add(batch)
        self.lexical.commit(self.log.last_seq)
        if progress:
            progress(done)
        with self._view_lock:
            self._fresh = ()
        self._publish()
        self._indexer = self._start_indexer()
        return done

    # -- reading -------------------------------------------------------------------

    def candidates(
        self,
        plan: Plan | None,
        low_us: int | None,
        high_us: int,
        limit: int,
        text_terms: Sequence[str] = (),
        stats: Statistics | None = None,
    ) -> Candidates:
        """The `limit` most relevant posts created in [low_us, high_us] (see
        `ima.store.relevance`) and the `limit` newest (ties: the later log position),
        fresh or indexed alike. Relevance counts `text_terms` (a term twice, twice) with
        `stats`, the collection's statistics: by default this store's own."""
        with self._view_lock:
            searcher, indexed_seq, fresh = self._searcher, self._indexed_seq, self._fresh
        wanted = list(text_terms)
        if stats is None:
            stats = self._statistics(searcher, indexed_seq, fresh, wanted)
        query = self.lexical.compile(plan, low_us, high_us)
        fresh_hits = [
            (created, seq, segment)
            for segment in fresh
            for created, seq in segment.search(plan, indexed_seq, low_us, high_us)
        ]
        newest = self._newest(searcher, query, fresh_hits, limit)
        analysed: dict[int, list[str]] = {}
        best = self._most_relevant(
            searcher, indexed_seq, query, fresh_hits, limit, wanted, stats, analysed
        )
        seqs = dict.fromkeys([*best, *newest])
        found = self.log.fetch(list(seqs))
        for seq, post in found.items():  # ranking reads them again: read once
            if seq in analysed:
                post._terms = analysed[seq]
        return Candidates(
            [found[s] for s in seqs if s in found], stats.doc_count, stats.doc_freq
        )

    def _newest(
        self, searcher: Any, query: Any, fresh_hits: list[tuple[int, int, Any]], limit: int
    ) -> list[int]:
        """Log positions of the `limit` newest matches by (creation time, log position).
        tantivy orders by time alone; when the post after its `limit`th shares that one's
        time, the posts created then are asked for again, ordered by position."""
        hits = self.lexical.ordered(searcher, query, limit + 1, "created")
        if len(hits) > limit and hits[limit][0] == hits[limit - 1][0]:
            oldest = hits[limit][0]
            tied = self.lexical.ordered(searcher, self.lexical.at_time(query, oldest), limit, "seq")
            hits = [h for h in hits if h[0] > oldest] + [(oldest, seq) for _, seq in tied]
        hits += [(created, seq) for created, seq, _ in fresh_hits]
        return [seq for _, seq in heapq.nlargest(limit, hits)]

    def _most_relevant(
        self,
        searcher: Any,
        indexed_seq: int,
        query: Any,
        fresh_hits: list[tuple[int, int, Any]],
        limit: int,
        wanted: list[str],
        stats: Statistics,
        analysed: dict[int, list[str]],
    ) -> list[int]:
        """Log positions of the `limit` matches with the highest (relevance, position);
        the terms of the posts it read go into `analysed`.

        tantivy proposes a pool ordered by its own score with each wanted term boosted by
        (collection idf / its idf), so its order is close to ours; it is read in that
        order, a chunk at a time. A post not read yet scores at most `pool_bound` times
        the next tantivy score, so once the `limit`-th best relevance read beats that,
        nothing else can enter (the threshold algorithm). A pool read to its end without
        that proof grows, up to `_POOL_GROWTH` times."""
        relevance = Relevance(wanted, stats)
        scores = {seq: relevance(segment.terms_of(seq)) for _, seq, segment in fresh_hits}
        docs, length = self._lengths(searcher, indexed_seq, wanted)
        boosts = {
            term: wanted.count(term)
            * idf(stats.doc_freq.get(term, 0), stats.doc_count)
            / idf(searcher.doc_freq("text", term), docs)
            for term in dict.fromkeys(wanted)
        }
        scoring, without = self.lexical.boosted(query, boosts)
        bound = pool_bound(stats.avg_len, length / max(1, docs))
        size, growth, read = 2 * limit, 0, 0
        pool = self.lexical.scored(searcher, scoring, size) if boosts else []
        while True:
            # every match holding a wanted term is in the pool (the rest score 0)
            complete = len(pool) < size or pool[-1][0] <= 0
            if read == len(pool):
                if complete:
                    break
                if growth == _POOL_GROWTH:
                    self.relevance_cuts_capped += 1
                    break
                growth, size, read = growth + 1, size * 4, 0
                pool = self.lexical.scored(searcher, scoring, size)
                continue
            chunk = pool[read : read + (limit if read == 0 else limit // 2 + 1)]
            read += len(chunk)
            new = [seq for score, seq in chunk if score > 0 and seq not in scores]
            for seq, terms in self.log.indexed_terms(new).items():
                analysed[seq] = terms
                scores[seq] = relevance(terms)
            ranked = heapq.nlargest(limit, ((g, seq) for seq, g in scores.items() if g > 0))
            # the highest tantivy score of a post not read yet
            rest = pool[read][0] if read < len(pool) else 0.0 if complete else pool[-1][0]
            if len(ranked) == limit and ranked[-1][0] > bound * rest:
                break
        ranked = heapq.nlargest(limit, ((g, seq) for seq, g in scores.items() if g > 0))
        best = [seq for _, seq in ranked]
        if len(best) < limit:  # the rest score 0: the latest positions among them
            zeros = [seq for _, seq, _ in fresh_hits if scores.get(seq, 0) <= 0]
            more = self.lexical.ordered(searcher, without, limit - len(best), "seq")
            zeros += [seq for _, seq in more]
            best += heapq.nlargest(limit - len(best), zeros)
        return best

    def _statistics(
        self,
        searcher: Any,
        indexed_seq: int,
        fresh: tuple[FreshSegment, ...],
        terms: Iterable[str],
    ) -> Statistics:
        """Counted in the index, plus the fresh posts it has not committed yet (a fresh
        segment is dropped only once the index holds all of it)."""
        wanted = set(terms)
        doc_freq = {
            term: searcher.doc_freq("text", term)
            + sum(seg.doc_freq(term, indexed_seq) for seg in fresh)
            for term in wanted
        }
        docs, length = self._lengths(searcher, indexed_seq, wanted)
        pending = sum(seg.pending(indexed_seq) for seg in fresh)
        return Statistics(
            searcher.num_docs + pending,
            doc_freq,
            docs + pending,
            length + sum(seg.length(indexed_seq) for seg in fresh),
        )

    def _lengths(self, searcher: Any, indexed_seq: int, terms: Iterable[str]
                 ) -> tuple[int, int]:  # fmt: skip
        """The index's (documents, terms), explained for one of `terms` or, failing
        those, of the newest indexed post's (read only if asked for)."""

        def newest_terms() -> Iterator[str]:
            seq = self.lexical.newest(searcher, indexed_seq)
            if seq is not None:
                yield from self.log.indexed_terms([seq]).get(seq, ())

        return self.lexical.lengths(searcher, chain(terms, newest_terms()))

    def statistics(self, terms: Iterable[str]) -> Statistics:
        """This store's statistics for relevance (`ima.store.relevance`)."""
        with self._view_lock:
            searcher, indexed_seq, fresh = self._searcher, self._indexed_seq, self._fresh
        return self._statistics(searcher, indexed_seq, fresh, terms)

    def term_stats(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """How many posts are searchable, and how many contain each term."""
        stats = self.statistics(terms)
        return stats.doc_count, stats.doc_freq

    def get(self, post_id: str) -> StoredPost | None:
        return self.log.get(post_id)

    def fetch(self, seqs: Sequence[int]) -> dict[int, StoredPost]:
        """Posts by log position (those still stored)."""
        return self.log.fetch(seqs)

    @property
    def last_seq(self) -> int:
        """The newest log position this store has written or followed."""
        return self.log.last_seq

    def newest_seq(self) -> int:
        """The newest log position as stored now (another process may be appending)."""
        return self.log.newest_seq()

    def newest_created_us(self) -> int | None:
        return self.log.newest_created_us()

    def existing(self, ids: Iterable[str]) -> dict[str, int]:
        """The given ids already stored, with their log positions."""
        return self.log.existing(ids)

    def tombstoned(self, ids: Iterable[str]) -> set[str]:
        """Those of the given ids that were deleted at their source."""
        return self.log.tombstoned(ids)

    def recent_originals(self, limit: int) -> list[StoredPost]:
        """The newest `limit` originals, oldest first (what warms dedup and vectors)."""
        return self.log.recent_originals(limit)

    def newest_originals(self, low_us: int, high_us: int, limit: int) -> list[StoredPost]:
        """The `limit` originals created last in [low_us, high_us], newest first (what a
        question about that window embeds when the background has not yet)."""
        return self.log.newest_originals(low_us, high_us, limit)

    def changes_since(self, seq: int) -> Iterator[tuple[int, tuple, str]]:
        """(seq, flat post, indexed text) of the originals after `seq`, in log order:
        what followers (trends, vectors, readers in other processes) catch up with."""
        return ((n, flat, text) for n, flat, text, _ in self.log.scan(seq))

    def oldest_created_us(self) -> int | None:
        return self.log.oldest_created_us()

    def count_created(self, low_us: int, high_us: int, most: int | None = None) -> int:
        """How many posts were created in [low_us, high_us] (cheap: an index count); past
        `most`, when given, counting stops (the answer is then `most` + 1)."""
        return self.log.count_created(low_us, high_us, most)

    def originals_created(
        self, low_us: int, high_us: int, every: int = 1
    ) -> Iterator[tuple[int, int, str, float, str]]:
        """(seq, created_us, author, spam, indexed text) of the originals created in
        [low_us, high_us], unordered; with `every` > 1 only those whose log position is a
        multiple of it: a sample taken before any row is read, so a busy day costs what
        its sample does."""
        return self.log.originals_created(low_us, high_us, every)

    def originals_since(
        self, created_us: int, upto_seq: int | None = None
    ) -> Iterator[tuple[int, int, int, str, float, str]]:
        """(seq, created_us, ingested_us, author, spam, indexed text) of originals created
        at or after `created_us`, in log order: what trends count from the log."""
        return self.log.originals_since(created_us, upto_seq)

    def cursor(self, source: str) -> str | None:
        """Where `source` had reached in its stream as of the last committed batch."""
        return self.log.cursor(source)

    def dead_letters(self, limit: int = 20) -> list[DeadLetter]:
        """The newest records ingest refused, newest first."""
        return self.log.dead_letters(limit)

    def counts(self) -> dict[str, int]:
        """Posts, originals and copies stored (cheaper than `stats`)."""
        return self.log.counts()

    def stats(self) -> StoreStats:
        with self._view_lock:
            indexed_seq, fresh = self._indexed_seq, self._fresh
        counts = self.log.counts()
        return StoreStats(
            posts=counts["posts"],
            originals=counts["originals"],
            copies=counts["copies"],
            log_seq=self.log.last_seq,
            indexed_seq=indexed_seq,
            index_lag_posts=sum(seg.pending(indexed_seq) for seg in fresh),
            fresh_segments=len(fresh),
            index_commits=self.index_commits,
            disk_bytes=_disk_bytes(self.data_dir),
            errors=self.log.error_counts(),
            dead_letters=self.log.dead_letter_count(),
        )
