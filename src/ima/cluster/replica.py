"""One partition held on one node: a plain `Store` filled from the partition's range of
the posts stream, answering searches once it has caught up.

The replica's own durable consumer starts at the partition's first stream position;
each post is acknowledged only after the replica's store committed it, so a replica
that dies resumes where its last commit ended and the other replica's acknowledgements
never stand in for its own. Messages outside the partition's range are not its business
(`term`: never redelivered to this consumer). When every position of the range is
committed, the partition is complete and the replica seals it: its key records the
range of creation times it holds, which lets queries skip it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from ima.cluster.fabric import Fabric
from ima.cluster.ownership import Directory, Partition
from ima.cluster.wire import Ask, pack, post_out
from ima.errors import BadInput
from ima.ingest import Pipeline
from ima.ingest.normalize import JsonLine
from ima.sources.base import Sink
from ima.store import Store

log = logging.getLogger(__name__)

SOURCE = "nats"  # what records without a `source` are attributed to, as `ima stream` does
_FETCH = 256
_FETCH_WAIT_S = 0.5  # how long one pull waits for posts
_POSITION_BITS = 32  # a partition's log positions, shifted into a cluster-wide order


def base(index: int) -> int:
    """What partition `index` adds to its log positions: positions then order posts
    across partitions as the stream did."""
    return index << _POSITION_BITS


class Replica:
    """Partition `part.index` on node `node`, stored under `directory`."""

    def __init__(
        self,
        nc: Any,
        fabric: Fabric,
        directory: Directory,
        node: str,
        part: Partition,
        path: Path,
        commit_interval: float,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.fabric = fabric
        self.directory = directory
        self.node = node
        self.part = part
        self.path = path
        self.store = Store(path, commit_interval=commit_interval)
        self.pipeline: Pipeline | None = None
        self.serving = False
        self.complete = False
        self._stopped = False  # once stopping, it never serves again
        self._submitted = 0
        self._committed = 0
        self._highest = 0  # highest stream position committed
        self._at_end = False  # the last message fetched was the stream's last
        self._subscription: Any = None
        self._acks: set[asyncio.Future] = set()
        self._answering = 0
        self._task: asyncio.Task | None = None

    def start(self) -> Replica:
        self._task = asyncio.create_task(self._run(), name=f"replica-{self.part.index}")
        return self

    @property
    def failed(self) -> BaseException | None:
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def _run(self) -> None:
        consumer = self.fabric.consumer(self.part.index, self.node)
        info = await self._consumer_info(consumer)
        if info is not None and self._range_done(info):
            await self._completed()
            return
        self.pipeline = Pipeline(self.store, workers=0).start()
        sink = Sink(self.pipeline, asyncio.get_running_loop())
        config = ConsumerConfig(
            durable_name=consumer,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=10,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.part.first,
            filter_subject=self.fabric.posts_subject,
            max_ack_pending=4 * _FETCH,
        )
        pull = await self.js.pull_subscribe(
            self.fabric.posts_subject, durable=consumer, stream=self.fabric.stream, config=config
        )
        while not self.complete:
            try:
                messages = await pull.fetch(_FETCH, timeout=_FETCH_WAIT_S)
            except TimeoutError:  # nats' own, or asyncio's when a late 408 used the time up
                messages = []
            except NatsError:  # a server went away; the client reconnects to another
                await asyncio.sleep(0.5)
                continue
            submitted = self._submitted
            for message in messages:
                seq = message.metadata.sequence.stream
                if not self.part.first <= seq <= self.part.last:
                    # (a consumer made before the stream reaches its start position
                    # begins at the stream's end, which may be before it)
                    await message.term()
                    continue
                self._submitted += 1
                self._at_end = message.metadata.num_pending == 0
                line = JsonLine(seq, message.data)
                await sink.put([line], SOURCE, self._on_commit(message, seq))
            # nothing of the range came: the stream may be all read (a partition the stream
            # has not reached yet is complete, empty, and serves before its first post)
            idle = self._submitted == submitted
            if idle and not self.serving and await self._caught_up(consumer):
                await self._serve()
            if self._highest >= self.part.last and self._committed == self._submitted:
                info = await self._consumer_info(consumer)
                if info is not None and self._range_done(info):
                    await self._completed()

    def _on_commit(self, message: Any, seq: int) -> Any:
        def committed() -> None:
            self._committed += 1
            self._highest = max(self._highest, seq)
            self._hold(message.ack())
            if self._at_end and self._committed == self._submitted and not self.serving:
                self._hold(self._serve())  # caught up with the stream: searchable now

        return committed

    def _hold(self, coroutine: Any) -> None:
        """Run `coroutine`, held until done: a dropped task may never run."""
        task = asyncio.ensure_future(coroutine)
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _caught_up(self, consumer: str) -> bool:
        """Every post the stream holds for this consumer is committed here. An empty
        fetch alone does not say so: on a loaded host the server may answer after the
        fetch's timeout, and a replica serving then answered with part of its posts."""
        if self._committed != self._submitted:
            return False
        try:
            info = await self._consumer_info(consumer)
        except NatsError:
            return False
        return info is not None and info.num_pending == 0 and info.num_ack_pending == 0

    def _range_done(self, info: Any) -> bool:
        return info.delivered.stream_seq >= self.part.last and info.num_ack_pending == 0

    async def _consumer_info(self, consumer: str) -> Any:
        try:
            return await self.js.consumer_info(self.fabric.stream, consumer)
        except NotFoundError:
            return None

    async def _completed(self) -> None:
        """Every position of the range is committed: stop taking posts, seal, serve."""
        self.complete = True
        if self.pipeline is not None:
            await asyncio.to_thread(self.pipeline.close)
            self.pipeline = None
        await self._serve()
        await self._seal()

    async def _seal(self) -> None:
        counts = self.store.counts()
        low, high = self.store.oldest_created_us(), self.store.newest_created_us()
        part = self.directory.partitions.get(self.part.index, self.part)
        while not part.sealed:
            sealed = await self.directory.change(
                part, sealed=True, low_us=low, high_us=high, posts=counts["originals"]
            )
            if sealed is not None:
                log.info("sealed partition %d: %d posts", part.index, counts["originals"])
                return
            part = await self.directory.fresh(self.part.index)

    async def _serve(self) -> None:
        if self.serving or self._stopped:
            return
        self.serving = True
        subject = self.fabric.query_subject(self.part.index)
        self._subscription = await self.nc.subscribe(subject, queue=subject, cb=self._answer)
        if self._stopped:  # stopped while subscribing: it must not stay subscribed
            await self._subscription.unsubscribe()
            self._subscription, self.serving = None, False
            return
        log.info(
            "serving partition %d: %d posts", self.part.index, self.store.counts()["originals"]
        )

    async def _answer(self, message: Any) -> None:
        """One search request; a malformed one gets an error, never a traceback."""
        try:
            ask = Ask.decode(message.data)
        except BadInput as exc:
            await message.respond(pack({"error": str(exc)}))
            return
        self._answering += 1
        try:
            reply = await asyncio.to_thread(self._search, ask)
        except Exception:
            log.exception("search failed in partition %d", self.part.index)
            reply = pack({"error": "search failed"})
        finally:
            self._answering -= 1
        await message.respond(reply)

    def _search(self, ask: Ask) -> bytes:
        shift = base(self.part.index)
        if ask.ids:
            found = [self.store.get(post_id) for post_id in ask.ids]
            rows = [post_out(sp, shift) for sp in found if sp is not None]
            return pack({"part": self.part.index, "posts": rows})
        if ask.stats_only:
            stats = self.store.statistics(ask.terms)
            return pack({"part": self.part.index, "stats": stats.as_json()})
        found = self.store.candidates(
            ask.plan, ask.low_us, ask.high_us, ask.limit, ask.terms, ask.stats
        )
        return pack({"part": self.part.index, "posts": [post_out(sp, shift) for sp in found.posts]})

    async def stop(self, *, drop: bool = False) -> None:
        """Stop serving and filling; with `drop` (the partition moved away), delete the
        consumer and the files too."""
        self._stopped = True  # a fill still under way must not subscribe again
        if self._subscription is not None:
            # drained, not unsubscribed: requests already delivered here are answered
            # (unsubscribing dropped them, and a query during a move came back partial)
            await self._subscription.drain()
            self._subscription = None
        self.serving = False
        for _ in range(100):  # searches under way finish before the store closes
            if not self._answering:
                break
            await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.pipeline is not None:
            await asyncio.to_thread(self.pipeline.close)
            self.pipeline = None
        await asyncio.to_thread(self.store.close)
        if drop:
            with contextlib.suppress(NotFoundError):
                consumer = self.fabric.consumer(self.part.index, self.node)
                await self.js.delete_consumer(self.fabric.stream, consumer)
            shutil.rmtree(self.path, ignore_errors=True)
