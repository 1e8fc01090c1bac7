"""The root: a store face for search over a cluster's partitions (Earlybird's root, on NATS).

`candidates` asks in two rounds, each request to every partition at once, all within
`deadline_s`. First every partition's statistics (document count, term frequencies,
lengths; a sealed partition's never change, so the root keeps them and asks once),
summed into the collection's. Then the partitions whose time range overlaps the query
cut their candidates by those statistics (`ima.store.relevance`), and the root cuts
their union the same way: the candidates, and so the ranking by `ima.search`, are a
single store's. A partition that does not answer in time leaves its range in
`missing`: the result is partial, and says so.

Search is synchronous; the NATS client runs on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from nats.errors import Error as NatsError

from ima.cluster.fabric import Fabric
from ima.cluster.ownership import Directory, Partition
from ima.cluster.wire import MAX_LIMIT, Ask, post_in, stats_in, unpack
from ima.errors import BadInput
from ima.fleet.connection import connect
from ima.post import to_us
from ima.store import Candidates, Plan, Relevance, Statistics, StoredPost, StoreStats

_STATS_CACHED = 200_000  # (partition, term) frequencies of sealed partitions kept


class _Sealed:
    """Statistics of sealed partitions, which never change; bounded, oldest out."""

    def __init__(self) -> None:
        self.shape: dict[int, Statistics] = {}  # (without frequencies)
        self.doc_freq: OrderedDict[tuple[int, str], int] = OrderedDict()

    def known(self, index: int, terms: Iterable[str]) -> bool:
        return index in self.shape and all((index, t) in self.doc_freq for t in terms)

    def get(self, index: int, terms: Iterable[str]) -> Statistics:
        freq = {}
        for term in terms:
            self.doc_freq.move_to_end((index, term))
            freq[term] = self.doc_freq[(index, term)]
        return replace(self.shape[index], doc_freq=freq)

    def put(self, index: int, stats: Statistics) -> None:
        self.shape[index] = replace(stats, doc_freq={})
        for term, n in stats.doc_freq.items():
            self.doc_freq[(index, term)] = n
        while len(self.doc_freq) > _STATS_CACHED:
            self.doc_freq.popitem(last=False)


def cut(
    posts: list[StoredPost], limit: int, wanted: Sequence[str], stats: Statistics
) -> list[StoredPost]:
    """From the partitions' candidates (each partition's own `limit` most relevant and
    newest), the candidates one store holding them all would have picked."""
    relevance = Relevance(wanted, stats)
    best = heapq.nlargest(limit, posts, key=lambda sp: (relevance(sp.terms), sp.seq))
    newest = heapq.nlargest(limit, posts, key=lambda sp: (to_us(sp.post.created_at), sp.seq))
    chosen = {sp.seq: sp for sp in (*best, *newest)}
    return [chosen[seq] for seq in sorted(chosen)]


class PartitionedStore:
    """Search over the cluster `fabric` on the NATS servers `url`; `open` before use."""

    def __init__(self, url: str, fabric: Fabric | None = None, *, deadline_s: float = 2.0) -> None:
        self.url = url
        self.fabric = fabric or Fabric()
        self.deadline_s = deadline_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ima-root", daemon=True)
        self._nc: Any = None
        self._directory: Directory | None = None
        self._sealed = _Sealed()
        self._expected = 0
        self._posts = 0  # searchable posts, as `stats` last counted them
        self._watch_stream: asyncio.Task | None = None
        #: requests sent: "stats" (first round: statistics), "search" (second: candidates)
        #: and "get" (posts by id)
        self.asked: Counter[str] = Counter()

    def open(self, timeout: float = 30) -> PartitionedStore:
        self._thread.start()
        self._call(self._open(), timeout)
        return self

    async def _open(self) -> None:
        self._nc = await connect(self.url, "ima-root")
        js = self._nc.jetstream()
        self._directory = await Directory(js, self.fabric).open()
        self._watch_stream = asyncio.create_task(self._follow_stream(js))

    async def _follow_stream(self, js: Any) -> None:
        """Keep `_expected` (how many partitions the stream's length implies) current: a
        partition the directory does not list yet is missing from answers, not absent."""
        while True:
            with contextlib.suppress(NatsError, TimeoutError):
                last = (await js.stream_info(self.fabric.stream)).state.last_seq
                span = self._directory.span
                self._expected = max(self._expected, (last - 1) // span + 1 if last else 0)
            await asyncio.sleep(0.5)

    def _call(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            if self._watch_stream is not None:
                self._loop.call_soon_threadsafe(self._watch_stream.cancel)
            # a connection to servers that are gone closes with an error: it is closed all the same
            with contextlib.suppress(OSError, NatsError, TimeoutError):
                if self._directory is not None:
                    self._call(self._directory.close(), 10)
                if self._nc is not None:
                    self._call(self._nc.close(), 10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def partitions(self) -> list[Partition]:
        """The partitions as last seen, oldest first."""
        assert self._directory is not None, "open the store first"
        return sorted(self._directory.partitions.values(), key=lambda p: p.index)

    def move(self, index: int, source: str, target: str, timeout: float = 60) -> None:
        """Move partition `index` from node `source` to `target`, searchable throughout."""
        assert self._directory is not None, "open the store first"
        self._call(self._directory.move(index, source, target, timeout), timeout + 10)

    # -- the face search uses -----------------------------------------------------------

    def candidates(
        self,
        plan: Plan | None,
        low_us: int | None,
        high_us: int,
        limit: int,
        text_terms: Sequence[str] = (),
    ) -> Candidates:
        """As `Store.candidates` on one store holding every partition's posts."""
        if not 1 <= limit <= MAX_LIMIT:
            raise BadInput(f"limit must be 1..{MAX_LIMIT}")
        ask = Ask(plan, low_us, high_us, limit, tuple(text_terms))
        return self._call(self._gather(ask), self.deadline_s + 5)

    def term_stats(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """Posts searchable in the whole cluster, and how many contain each term."""
        ask = Ask(None, None, 0, 1, tuple(dict.fromkeys(terms)), stats_only=True)
        found = self._call(self._gather(ask), self.deadline_s + 5)
        return found.doc_count, found.doc_freq

    def get(self, post_id: str) -> StoredPost | None:
        """The post stored under `post_id`, from whichever partition answers with it (the
        latest in the stream, should it have come twice); None if none does in time."""
        ask = Ask(None, None, 0, 1, (), ids=(post_id,))
        replies = self._call(self._round(self.partitions, ask, time.monotonic() + self.deadline_s),
                             self.deadline_s + 5)  # fmt: skip
        found = [post_in(row) for reply in replies if reply is not None
                 and isinstance(reply.get("posts"), list) for row in reply["posts"]]  # fmt: skip
        return max(found, key=lambda sp: sp.seq, default=None)

    def stats(self) -> StoreStats:
        """What `/healthz` and `/metrics` show of a store: the posts searchable in the
        cluster; the rest (index lag, refused records, disk) is each node's to report.
        While NATS is unreachable, the count last made: health answers at once."""
        if self._nc is not None and self._nc.is_connected:
            self._posts, _ = self.term_stats(())
        posts = self._posts
        return StoreStats(posts=posts, originals=posts, copies=0, log_seq=0, indexed_seq=0,
                          index_lag_posts=0, fresh_segments=0, index_commits=0, disk_bytes=0,
                          errors={}, dead_letters=0)  # fmt: skip

    # -- fan-out and merge ---------------------------------------------------------------

    async def _gather(self, ask: Ask) -> Candidates:
        """Two rounds: every partition's statistics (sealed ones' kept), summed into the
        collection's; then candidates, cut by them, from the partitions that overlap."""
        deadline = time.monotonic() + self.deadline_s
        terms = tuple(dict.fromkeys(ask.terms))
        known = self.partitions
        listed = {p.index for p in known}
        missing: list[tuple[int | None, int | None]] = [
            (None, None) for i in range(self._expected) if i not in listed
        ]
        parts: list[Statistics] = []
        asks: list[Partition] = []
        for part in known:
            if part.sealed and self._sealed.known(part.index, terms):
                parts.append(self._sealed.get(part.index, terms))
            else:
                asks.append(part)
        first = Ask(None, None, 0, 1, terms, stats_only=True)
        replies = await self._round(asks, first, deadline)
        answered: list[Partition] = [p for p in known if p not in asks]
        for part, reply in zip(asks, replies, strict=True):
            try:
                stats = stats_in(reply["stats"]) if reply is not None else None
            except (BadInput, KeyError):
                stats = None
            if stats is None:
                self._missed(part, missing)
                continue
            parts.append(stats)
            answered.append(part)
            if part.sealed:
                self._sealed.put(part.index, stats)
        total = Statistics.sum(parts, terms)
        posts: list[StoredPost] = []
        if not ask.stats_only:
            overlapping = [p for p in answered if p.overlaps(ask.low_us, ask.high_us)]
            second = replace(ask, stats=total)
            for part, reply in zip(overlapping, await self._round(overlapping, second, deadline),
                                   strict=True):  # fmt: skip
                if reply is None or not isinstance(reply.get("posts"), list):
                    self._missed(part, missing)
                    continue
                posts.extend(post_in(row) for row in reply["posts"])
            posts = cut(posts, ask.limit, ask.terms, total)
        return Candidates(posts, total.doc_count, total.doc_freq, tuple(missing))

    def _missed(self, part: Partition, missing: list) -> None:
        if part.index < self._expected:  # else the stream has not reached it: empty
            missing.append((part.low_us, part.high_us if part.sealed else None))

    async def _round(self, parts: list[Partition], ask: Ask, deadline: float) -> list:
        self.asked["get" if ask.ids else "stats" if ask.stats_only else "search"] += len(parts)
        return await asyncio.gather(*(self._ask(p, ask, deadline) for p in parts))

    async def _ask(self, part: Partition, ask: Ask, deadline: float) -> dict | None:
        """One partition's reply, or None if it had none in time (or a broken one)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            message = await self._nc.request(
                self.fabric.query_subject(part.index), ask.encode(), timeout=remaining
            )
            reply = unpack(message.data)
        except (NatsError, TimeoutError, BadInput):
            return None
        if not isinstance(reply, dict) or "error" in reply:
            return None
        return reply
