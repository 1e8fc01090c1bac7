"""The root: a store face for search over a cluster's partitions (Earlybird's root, on NATS).

`candidates` sends one request per partition, at once, and waits at most `deadline_s`:
partitions whose time range overlaps the query return their candidates and term
statistics; the others (sealed, outside the range) only their statistics, which a
sealed partition never changes, so the root keeps them and asks only once. Candidates
are merged and ranked on the root by `ima.search`, with document counts and
frequencies summed over every partition: the collection-wide statistics a single
store would have used, so each post scores as it would there. A partition that does
not answer in time leaves its range in `missing`: the result is partial, and says so.

Search is synchronous; the NATS client runs on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from nats.errors import Error as NatsError

from ima.cluster.fabric import Fabric
from ima.cluster.ownership import Directory, Partition
from ima.cluster.wire import MAX_LIMIT, Ask, post_in, unpack
from ima.errors import BadInput
from ima.fleet.connection import connect
from ima.store import Candidates, Plan, StoredPost

_STATS_CACHED = 200_000  # (partition, term) frequencies of sealed partitions kept


class _Sealed:
    """Term statistics of sealed partitions, which never change; bounded, oldest out."""

    def __init__(self) -> None:
        self.doc_count: dict[int, int] = {}
        self.doc_freq: OrderedDict[tuple[int, str], int] = OrderedDict()

    def known(self, index: int, terms: Iterable[str]) -> bool:
        return index in self.doc_count and all((index, t) in self.doc_freq for t in terms)

    def get(self, index: int, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        freq = {}
        for term in terms:
            self.doc_freq.move_to_end((index, term))
            freq[term] = self.doc_freq[(index, term)]
        return self.doc_count[index], freq

    def put(self, index: int, doc_count: int, doc_freq: dict[str, int]) -> None:
        self.doc_count[index] = doc_count
        for term, n in doc_freq.items():
            self.doc_freq[(index, term)] = n
        while len(self.doc_freq) > _STATS_CACHED:
            self.doc_freq.popitem(last=False)


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
        self._watch_stream: asyncio.Task | None = None
        #: requests sent: "search" (candidates and statistics) and "stats" (statistics only)
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
        """As `Store.candidates`, over every partition whose time range overlaps."""
        if not 1 <= limit <= MAX_LIMIT:
            raise BadInput(f"limit must be 1..{MAX_LIMIT}")
        terms = tuple(dict.fromkeys(text_terms))
        ask = Ask(plan, low_us, high_us, limit, terms)
        return self._call(self._gather(ask), self.deadline_s + 5)

    def term_stats(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """Posts searchable in the whole cluster, and how many contain each term."""
        ask = Ask(None, None, 0, 1, tuple(dict.fromkeys(terms)), stats_only=True)
        found = self._call(self._gather(ask), self.deadline_s + 5)
        return found.doc_count, found.doc_freq

    # -- fan-out and merge ---------------------------------------------------------------

    async def _gather(self, ask: Ask) -> Candidates:
        deadline = time.monotonic() + self.deadline_s
        posts: list[StoredPost] = []
        doc_count = 0
        doc_freq = dict.fromkeys(ask.terms, 0)
        known = self.partitions
        listed = {p.index for p in known}
        missing: list[tuple[int | None, int | None]] = [
            (None, None) for i in range(self._expected) if i not in listed
        ]
        asks: list[tuple[Partition, Ask]] = []
        for part in known:
            wanted = not ask.stats_only and part.overlaps(ask.low_us, ask.high_us)
            if not wanted and part.sealed and self._sealed.known(part.index, ask.terms):
                count, freq = self._sealed.get(part.index, ask.terms)
                doc_count += count
                for term, n in freq.items():
                    doc_freq[term] += n
                continue
            stats = Ask(None, None, 0, 1, ask.terms, stats_only=True)
            asks.append((part, ask if wanted else stats))
        self.asked.update("stats" if a.stats_only else "search" for _, a in asks)
        replies = await asyncio.gather(*(self._ask(p, a, deadline) for p, a in asks))
        for (part, sent), reply in zip(asks, replies, strict=True):
            if reply is None:
                if part.index < self._expected:  # else the stream has not reached it: empty
                    missing.append((part.low_us, part.high_us if part.sealed else None))
                continue
            doc_count += reply["doc_count"]
            for term in ask.terms:
                doc_freq[term] += reply["doc_freq"].get(term, 0)
            if part.sealed:
                self._sealed.put(part.index, reply["doc_count"], reply["doc_freq"])
            if not sent.stats_only:
                posts.extend(post_in(row) for row in reply["posts"])
        posts.sort(key=lambda sp: sp.seq)
        return Candidates(posts, doc_count, doc_freq, tuple(missing))

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
