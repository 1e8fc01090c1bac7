"""The ingest pipeline: raw records → normalize → deduplicate → batch → commit → acknowledge.

Producers `submit` records into a bounded queue (a full queue blocks them: that is
the back-pressure). One pipeline thread drains it into batches that close on size
or after `max_wait` seconds, whichever comes first, and commits each batch to the
store in one transaction. Only then are the batch's acknowledgements called.
A bad record is counted under its error kind and skipped; it never stops the stream.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ima.errors import Unavailable
from ima.ingest.changes import Cursor, Delete, Edit, Engagement
from ima.ingest.dedup import DedupIndex, Screen, fingerprints
from ima.ingest.normalize import JsonLine, RecordError
from ima.ingest.prepare import Payload, Payloads, Prepared, prepare_batch
from ima.ingest.worker_process import exit_with_parent
from ima.post import Flat, to_us
from ima.store import DEAD_LETTER_BYTES, Batch, DeadLetter, Entry, Removals, Store

log = logging.getLogger(__name__)

#: Called once per record after its batch commits: (post id or None, status, error or None).
#: Status is one of `new`, `updated` (metrics), `edited`, `copy`, `deleted` (a delete, or a
#: record of a deleted post), `engaged` (an `Engagement`), `error`.
Ack = Callable[[str | None, str, str | None], None]

_STOP = object()

#: how long a preparing process may take on one share of a batch before it counts as
#: hung (a share is normally done in tens of milliseconds; processes started again after
#: a death start with their first share, about a second)
PREPARE_TIMEOUT_S = 30.0

#: records for which a batch is shared out one more way (up to one share a preparing
#: process): the last post of a large batch waits for a share of it, not all of it
PREPARE_CHUNK = 64


def tune_gc() -> None:
    """Rescan old objects rarely: ingest keeps hundreds of thousands alive (dedup tables,
    fresh segments), and with the default thresholds the collector rescanned them ever
    more often, a third of the throughput at a million posts. Young objects are still
    collected every 20,000 allocations: a young collection's pause grows with what is
    new since the last one, and at 200,000 it stopped every thread for up to 90 ms
    (README "Performance notes"). The older generation is scanned after as many
    allocations as before (20,000 × 500). Process-wide, so the program calls it."""
    gc.set_threshold(20_000, 500, 1000)


def _start_worker() -> None:
    tune_gc()
    exit_with_parent()


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    outcomes: Counter = field(default_factory=Counter)  # acknowledgement status -> count
    errors: Counter = field(default_factory=Counter)
    batches: int = 0
    recent_errors: deque = field(default_factory=lambda: deque(maxlen=20))

    @property
    def new(self) -> int:
        return self.outcomes["new"]

    @property
    def updated(self) -> int:
        return self.outcomes["updated"] + self.outcomes["edited"]

    @property
    def copies(self) -> int:
        return self.outcomes["copy"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            **{status: self.outcomes[status] for status in sorted(self.outcomes)},
            "errors": dict(self.errors),
            "batches": self.batches,
        }


@dataclass(slots=True)
class _Item:
    record: Any
    ack: Ack | None
    default_source: str
    allowed_sources: frozenset[str] | None = None

    def payload(self) -> Payload:
        return (self.record, self.default_source, self.allowed_sources)

    def raw(self) -> bytes:
        """The record as received, for the dead-letter table: bytes kept as they came."""
        record = self.record.record if isinstance(self.record, Edit) else self.record
        if isinstance(record, JsonLine):
            return record.data[:DEAD_LETTER_BYTES]
        try:
            return json.dumps(record, default=repr)[:DEAD_LETTER_BYTES].encode()
        except (ValueError, TypeError, RecursionError):
            return repr(record)[:DEAD_LETTER_BYTES].encode("utf-8", "replace")


@dataclass(slots=True)
class _InFlight:
    """A batch being prepared: chunks in preparing processes, in order, then `tail`,
    what the pipeline thread prepared itself (all of it without preparing processes)."""

    batch: list[_Item]
    futures: list[Future]
    tail: list
    now: datetime
    pool: ProcessPoolExecutor | None = None  # the preparing processes `futures` are in

    def ready(self) -> bool:
        return all(future.done() for future in self.futures)


class Pipeline:
    """Runs the ingest thread; use as a context manager or call `start`/`close`.

    With `workers` > 0, batches are prepared (normalized, analyzed, fingerprinted) in
    that many processes while the pipeline thread commits earlier ones, in order, each
    as soon as it is prepared (see `_dispatch` for how a batch is shared out). With 0,
    everything happens in the pipeline thread: less throughput, lower latency.
    The queue holds at most `queue_size` entries (a record, or a group of records).
    """

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 1000,
        max_wait: float = 0.001,
        queue_size: int = 256,
        workers: int = 0,
        dedup: DedupIndex | None = None,
        prepare_timeout: float = PREPARE_TIMEOUT_S,
    ) -> None:
        if not 1 <= batch_size <= 100_000:
            raise ValueError(f"batch_size must be 1..100000, got {batch_size}")
        if not 0 <= max_wait <= 10:
            raise ValueError(f"max_wait must be 0..10 seconds, got {max_wait}")
        self.store = store
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.prepare_timeout = prepare_timeout
        self.stats = IngestStats()
        self.dedup = dedup or DedupIndex()
        self._worker_count = workers
        self._workers = self._start_workers() if workers > 0 else None
        self._depth = 2 * workers  # batches in flight beyond the one being committed
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="ima-ingest", daemon=True)
        self._failure: BaseException | None = None
        self._warm_dedup()

    def _start_workers(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._worker_count, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
        )  # fmt: skip

    def _warm_dedup(self, limit: int = 50_000) -> None:
        """After a restart, recent originals are still originals for copies to collapse onto."""
        recent = self.store.recent_originals(limit)
        for sp, fp in zip(recent, fingerprints([sp.indexed_text for sp in recent]), strict=True):
            if fp is not None:
                self.dedup.remember(fp, sp.post.id)

    @property
    def failure(self) -> BaseException | None:
        """What stopped the pipeline thread (never a record: the store, or a bug)."""
        return self._failure

    def start(self) -> Pipeline:
        if self._workers is not None:  # start the processes now, not under the first batch
            now = datetime.now(UTC)
            for started in [
                self._workers.submit(prepare_batch, [], now) for _ in range(self._worker_count)
            ]:
                started.result()
        self._thread.start()
        return self

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, record: Any, ack: Ack | None = None, *, source: str = "file") -> None:
        """Queue one record (a dict, a `JsonLine`, or a `RecordError` a source hit);
        blocks while the queue is full."""
        self.submit_many([record], ack, source=source)

    def submit_many(
        self,
        records: Sequence[Any],
        ack: Ack | None = None,
        *,
        source: str = "file",
        allowed_sources: frozenset[str] | None = None,
    ) -> None:
        """Queue records that are all at hand at once; cheaper per record than `submit`.
        With `allowed_sources`, a record may claim only `source` or one of those."""
        items = [_Item(record, ack, source, allowed_sources) for record in records]
        while True:
            if self._failure is not None:
                raise Unavailable("ingest pipeline failed") from self._failure
            try:
                self._queue.put(items, timeout=0.1)
                return
            except queue.Full:
                continue

    async def submit_async(
        self,
        records: Sequence[Any],
        ack: Ack | None = None,
        *,
        source: str = "file",
        allowed_sources: frozenset[str] | None = None,
    ) -> None:
        """Like `submit_many`, but waits without blocking the event loop."""
        item = [_Item(record, ack, source, allowed_sources) for record in records]
        delay = 0.0005
        while True:
            if self._failure is not None:
                raise Unavailable("ingest pipeline failed") from self._failure
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

    def close(self) -> None:
        """Commit everything queued, then stop the pipeline thread."""
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                continue
        if self._thread.ident is not None:
            self._thread.join()
        if self._failure is not None:
            raise Unavailable("ingest pipeline failed") from self._failure

    # -- the pipeline thread -----------------------------------------------------------

    def _collect(self, block: bool) -> tuple[list[_Item], bool]:
        """One batch: waits for a first entry (if `block`), then up to `max_wait` for more."""
        try:
            first = self._queue.get() if block else self._queue.get_nowait()
        except queue.Empty:
            return [], False
        if first is _STOP:
            return [], True
        batch = list(first)
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                entry = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else (self._queue.get_nowait())
                )
            except queue.Empty:
                break
            if entry is _STOP:
                return batch, True
            batch.extend(entry)
        return batch, False

    def _run(self) -> None:
        inflight: deque[_InFlight] = deque()
        try:
            stopping = False
            while not (stopping and not inflight):
                batch: list[_Item] = []
                if not stopping:
                    batch, stopping = self._collect(block=not inflight)
                if batch:
                    idle = not inflight and self._queue.empty()  # nothing else to do here
                    inflight.append(self._dispatch(batch, idle=idle))
                # one commit a round, so that collecting keeps the preparing processes fed;
                # the oldest batch as soon as it is prepared, and when nothing new came in
                # or too many are in flight, once it is
                if inflight and (not batch or len(inflight) > self._depth or inflight[0].ready()):
                    self._commit_each(inflight[0].batch, self._prepared(inflight.popleft()))
        except BaseException as exc:  # keep the reason; submit() and close() report it
            self._failure = exc
            log.exception("ingest pipeline failed")
        finally:
            if self._workers is not None:
                self._workers.shutdown(cancel_futures=True)

    def _dispatch(self, batch: list[_Item], *, idle: bool) -> _InFlight:
        """Start preparing a batch, shared out in equal chunks: one for every
        `PREPARE_CHUNK` records or part of it, but no more than there are preparing
        processes, and, when `idle` (no other batch in flight and none queued: this
        thread would only wait), one more that this thread prepares at once. A batch of
        one chunk, idle, is prepared here whole: handing it to a process cost more CPU
        than preparing it, and its posts waited for two process switches (README
        "Performance notes")."""
        now = datetime.now(UTC)
        payloads = [item.payload() for item in batch]
        shares = min(-(-len(batch) // PREPARE_CHUNK), self._worker_count + idle)
        pool = self._workers
        if pool is None or (idle and shares == 1):
            return _InFlight(batch, [], self._prepare_here(payloads, now), now)
        size = -(-len(batch) // shares)
        split = len(batch) - size if idle else len(batch)  # the rest is prepared here
        sent = payloads[:split]
        try:
            futures = [
                pool.submit(prepare_batch, Payloads(sent[start : start + size]), now)
                for start in range(0, split, size)
            ]
        except BrokenProcessPool:  # a preparing process died while it waited for work
            self._restart_workers(pool)
            return _InFlight(batch, [], self._prepare_here(payloads, now), now)
        tail = self._prepare_here(payloads[split:], now) if idle else []
        return _InFlight(batch, futures, tail, now, pool)

    def _prepared(self, flight: _InFlight) -> list:
        """A batch's prepared records. Should a preparing process die, or take longer
        than `prepare_timeout` on a share, the processes are started again and the batch
        is prepared again a record at a time, so that a record that kills or hangs the
        code preparing it is refused alone and the pipeline goes on."""
        try:
            out: list = []
            for future in flight.futures:
                out += future.result(timeout=self.prepare_timeout)
            return out + flight.tail
        except (BrokenProcessPool, TimeoutError) as exc:
            assert flight.pool is not None
            self._restart_workers(flight.pool, hung=isinstance(exc, TimeoutError))
        except Exception:
            log.exception("a batch could not be prepared in a preparing process")
            return self._prepare_here([item.payload() for item in flight.batch], flight.now)
        out = []
        for item in flight.batch:
            out += self._prepare_alone(item.payload(), flight.now)
        return out

    def _prepare_alone(self, payload: Payload, now: datetime) -> list:
        """One record prepared in a preparing process within `prepare_timeout`. It is
        refused once it has hung a process, or killed two in a row (one death could be
        the machine's doing: its out-of-memory killer, say)."""
        for _attempt in (1, 2):
            pool = self._workers
            assert pool is not None
            try:
                one = pool.submit(prepare_batch, Payloads([payload]), now)
                return one.result(timeout=self.prepare_timeout)
            except TimeoutError:
                self._restart_workers(pool, hung=True)
                return [RecordError("unprocessable", "record: preparing it took too long")]
            except BrokenProcessPool:
                self._restart_workers(pool)
        return [RecordError("unprocessable", "record: preparing it stopped the process twice")]

    def _restart_workers(self, broken: ProcessPoolExecutor, *, hung: bool = False) -> None:
        """Start the preparing processes again after one died or hung (its processes
        are killed): once, though every batch then in flight on them reports it."""
        if broken is not self._workers:
            return
        log.error("a preparing process %s; starting them again", "hung" if hung else "died")
        # all of its processes: a hung one would never end, and one the pool started as
        # it broke was seen left behind, waiting for work (`_processes`: the pool's own
        # table, 3.8 to 3.13; 3.14 has `kill_workers`)
        for process in list((getattr(broken, "_processes", None) or {}).values()):
            process.kill()
        broken.shutdown(wait=False, cancel_futures=True)
        self._workers = self._start_workers()  # they start with their first share

    @staticmethod
    def _prepare_here(payloads: list[Payload], now: datetime) -> list:
        """Records prepared in this thread; should preparing fail as a whole, each
        record is prepared alone, so whatever broke it is refused by itself."""
        try:
            return prepare_batch(payloads, now)
        except Exception:
            log.exception("a batch could not be prepared; preparing its records one by one")
        out: list = []
        for payload in payloads:
            try:
                out += prepare_batch([payload], now)
            except Exception as exc:
                out.append(RecordError("unprocessable", f"record: {type(exc).__name__}"))
        return out

    def _commit_each(self, batch: list[_Item], prepared: list) -> None:
        """Commit a batch; if that fails, commit its records one by one so that the one
        that cannot be stored is refused alone (a dead letter) and the rest are kept.
        Only when no record can be committed is the store itself broken: that is fatal."""
        try:
            self._commit(batch, prepared)
            return
        except Exception:
            log.exception("a batch failed to commit; committing its records one by one")
        failed = 0
        for item, one in zip(batch, prepared, strict=True):
            try:
                self._commit([item], [one])
            except Exception:
                failed += 1
                reason = RecordError("unstorable", "record: could not be stored")
                self._commit([item], [reason])  # raises if even a dead letter cannot be
        if failed == len(batch) > 1:
            raise Unavailable("the store refuses every record")

    def _commit(
        self,
        batch: list[_Item],
        prepared: list[Prepared | RecordError | Delete | Engagement | Cursor],
    ) -> None:
        stats = self.stats
        outcomes: list[tuple[str | None, str, str | None]] = []
        errors: Counter = Counter()
        # id -> (prepared, index into outcomes, is an edit); later records of an id win
        latest: dict[str, tuple[Prepared, int, bool]] = {}
        deleted: dict[str, None] = {}
        engaged: dict[str, list[int]] = {}
        cursors: dict[str, str] = {}
        letters: list[DeadLetter] = []
        now_us = to_us(datetime.now(UTC))
        for source_item, item in zip(batch, prepared, strict=True):
            if type(item) is Prepared:  # most are: tested first
                if item.dropped:
                    errors.update(item.dropped)
                post_id = item.flat[Flat.ID]
                if post_id in deleted:
                    outcomes.append((post_id, "deleted", None))
                    continue
                edit = isinstance(source_item.record, Edit)
                earlier = latest.get(post_id)
                if earlier is not None:
                    outcomes[earlier[1]] = (post_id, "updated", None)
                    edit = edit or earlier[2]
                latest[post_id] = (item, len(outcomes), edit)
                outcomes.append((post_id, "new", None))
            elif isinstance(item, RecordError):
                errors[item.kind] += 1
                stats.recent_errors.append(f"{item.kind}: {item}")
                outcomes.append((None, "error", str(item)))
                letters.append(DeadLetter(now_us, source_item.default_source, item.kind,
                                          str(item), source_item.raw()))  # fmt: skip
            elif isinstance(item, Delete):
                earlier = latest.pop(item.post_id, None)
                if earlier is not None:
                    outcomes[earlier[1]] = (item.post_id, "deleted", None)
                deleted[item.post_id] = None
                outcomes.append((item.post_id, "deleted", None))
            elif isinstance(item, Cursor):
                cursors[item.source] = item.value
                outcomes.append((None, "cursor", None))
            else:  # an Engagement
                counts = engaged.setdefault(item.post_id, [0, 0, 0])
                counts[0] += item.likes
                counts[1] += item.reposts
                counts[2] += item.replies
                outcomes.append((item.post_id, "engaged", None))

        existing = self.store.existing(latest)
        gone = self.store.tombstoned(latest.keys() - existing.keys())
        metric_updates = []
        replaced: list[str] = []
        entries: list[Entry] = []
        copy_counts: Counter = Counter()
        screen = self.dedup.screen([item.fingerprint for item, _, edit in latest.values()
                                    if item.fingerprint is not None and not edit])  # fmt: skip
        for post_id, (item, index, edit) in latest.items():
            flat = item.flat
            if post_id in gone:
                outcomes[index] = (post_id, "deleted", None)
                continue
            if post_id in existing:
                if not edit:
                    # a record with no counts (a replayed Jetstream post, say) must not
                    # erase the likes counted since it was first stored
                    if any(flat[Flat.METRICS]):
                        metric_updates.append((*flat[Flat.METRICS], post_id))
                    outcomes[index] = (post_id, "updated", None)
                    continue
                replaced.append(post_id)
                outcomes[index] = (post_id, "edited", None)
            original = None if edit else self._original_of(item, screen)
            if original is None:
                entries.append(Entry(flat, item.text, item.terms))
            else:
                copy = (*flat[: Flat.DUPLICATE_OF], original, *flat[Flat.DUPLICATE_OF + 1 :])
                copy_counts[original] += 1
                outcomes[index] = (post_id, "copy", None)
                entries.append(Entry(copy, ""))

        removals = (
            Removals(list(deleted), replaced, to_us(datetime.now(UTC)))
            if deleted or replaced
            else None
        )
        engagements = [(*counts, post_id) for post_id, counts in engaged.items()]
        self.store.write(Batch(
            entries=entries, metric_updates=metric_updates, copy_counts=dict(copy_counts),
            engagements=engagements, removals=removals, cursors=cursors, errors=dict(errors),
            dead_letters=letters,
        ))  # fmt: skip
        stats.batches += 1
        stats.errors.update(errors)
        counted = [status for _, status, _ in outcomes if status != "cursor"]  # not events
        stats.received += len(counted)
        stats.outcomes.update(counted)
        for source_item, (post_id, status, error) in zip(batch, outcomes, strict=True):
            if source_item.ack is not None:
                try:  # committed: a failing acknowledgement must not undo or redo that
                    source_item.ack(post_id, status, error)
                except Exception:
                    log.exception("an acknowledgement failed")

    def _original_of(self, item: Prepared, screen: Screen | None) -> str | None:
        """The post `item` copies (a repost's original, or an earlier near-identical text);
        `screen`: its batch's (`DedupIndex.screen`)."""
        repost_of = item.flat[Flat.REPOST_OF]
        if repost_of is not None:
            return repost_of
        fp = item.fingerprint
        if fp is None:
            return None
        original = self.dedup.original_of(fp, screen)
        if original == item.flat[Flat.ID]:  # remembered by a batch that failed to commit
            return None
        if original is None:
            self.dedup.remember(fp, item.flat[Flat.ID])
        return original


def ingest(
    pipeline: Pipeline,
    records: Iterable[Any] | AsyncIterable[Any],
    *,
    source: str = "file",
    ack: Ack | None = None,
    group: int = 1,
) -> None:
    """Feed a sync or async iterable of records into a running pipeline.

    `group` > 1 hands records over in groups (faster, but a record waits for its
    group to fill): use it for files read as fast as possible, not for live streams.
    """
    if isinstance(records, AsyncIterable):

        async def drain() -> None:
            async for record in records:
                await pipeline.submit_async([record], ack, source=source)

        asyncio.run(drain())
        return
    if group <= 1:
        for record in records:
            pipeline.submit(record, ack, source=source)
        return
    pending: list[Any] = []
    for record in records:
        pending.append(record)
        if len(pending) >= group:
            pipeline.submit_many(pending, ack, source=source)
            pending = []
    if pending:
        pipeline.submit_many(pending, ack, source=source)
