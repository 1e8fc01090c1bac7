"""Trends, maintained as posts arrive: counting and stories beside the ingest path.

`Trends.follow` makes the tracker a store listener: each committed batch is handed
to a counting thread, which counts each original (its words and one set difference)
and, when stream time passes a tick, asks the windows due which items burst (a tick's
judgement can take a tenth of a second: on the ingest path, it held up commits).
Turning bursts into stories (searching their posts, grouping, writing titles and
summaries) runs on a thread of its own too; when it falls behind, it skips to the
newest tick. Stream time is the newest post's `created_at`, so a replayed stream is
judged in its own time, and each tick only sees posts created before it: `as_of` holds.

After a restart, the counts are rebuilt by reading the log back over `REBUILD_US`,
on the counting thread while new posts wait; versions already recorded are not
recorded again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ima.ingest.flags import SPAM_LIMIT
from ima.post import Flat
from ima.store import Entry, Store
from ima.trends.bursts import MINUTE_US, Burst, BurstDetector
from ima.trends.history import LINGER_SPANS
from ima.trends.instant import PostCache
from ima.trends.items import Tellings, items_of
from ima.trends.stories import Draft, Story, group, story_id, tell
from ima.trends.view import TICK_US, StoryView

log = logging.getLogger(__name__)

REBUILD_US = 6 * 3600 * 1_000_000  # after a restart, counts are rebuilt from this much log
REFRESH_US = 60_000_000  # an unchanged story still gets a new version (volumes) this often
REBUILD_GROWTH = 0.1  # a window's stories are built again once an item's count grows this much
BACKLOG_LIMIT = 200_000  # posts committed during the catch-up that wait to be counted

Row = tuple[int, int, str, float, str]  # seq, counted at (µs), author, spam score, text


@dataclass(frozen=True, slots=True)
class _Work:
    at_us: int
    bursts: dict[str, list[Burst]]
    mark: int


def _same(story: Story, draft: Draft) -> bool:
    """Is `draft` (found now) the story already known? Same lead words, or many
    of the same posts."""
    if set(story.items[:3]) & set(draft.items):
        return True
    shared = len(story.post_ids & {p.id for p in draft.posts})
    return shared > 0 and shared >= 0.3 * min(len(story.post_ids), len(draft.posts))


def _signature(story: Story) -> tuple:
    return (story.title, story.sentences, tuple(story.items[:5]), story.authors // 5)


class Trends(StoryView):
    """Bursts and stories over a store; `current` reads them back at any instant."""

    def __init__(
        self,
        store: Store,
        *,
        detector: BurstDetector | None = None,
        background: bool = True,
    ) -> None:
        self.detector = detector or BurstDetector()
        windows = tuple((n, w.span, w.n) for n, w in self.detector.windows.items())
        super().__init__(store, windows=windows)
        self._tellings = Tellings()
        self._posts = {n: PostCache(store, s) for n, s in self.spans_us.items()}
        self._books: dict[str, dict[str, Story]] = {n: {} for n in self.detector.windows}
        self._recorded: dict[str, tuple[int, tuple]] = {}  # story → (at_us, signature)
        # window → (last built, last looked at, its bursting items' counts when built)
        self._built: dict[str, tuple[int, int, dict[str, int]]] = {}
        self._bucket_us = {n: span * MINUTE_US // k for n, span, k in windows}
        self._mark = self.history.state("mark")
        self._recorded_until = self.history.state("tick_us")
        self._next_tick: int | None = None
        self._cond = threading.Condition()
        self._pending: _Work | None = None
        self._stopping = False
        self._counted = False  # stopping, and every post offered is counted: ticks end
        self.ticks = 0
        self._backlog_cond = threading.Condition()
        self._backlog: list[list[tuple[int, Entry]]] = []
        self._waiting = 0
        self._counting: threading.Thread | None = None
        self.ready = threading.Event()
        self.dropped = 0  # posts not counted: they arrived while the backlog was full
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="ima-trends", daemon=True)
            self._thread.start()

    # -- counting ---------------------------------------------------------------------

    def follow(self) -> None:
        """Count each batch the store commits. With a story thread, counting has a
        thread of its own too: it reads back what the log already has (a big log takes
        a while), then counts each batch as committed, so that neither the catch-up nor
        a tick's judgement (a tenth of a second at times) holds up ingest; batches wait
        in a bounded backlog meanwhile. Without, the catch-up happens here and the
        listener counts. `ready` is set once trends are current."""
        upto = self.store.last_seq
        if self._thread is None:
            self.catch_up(upto_seq=upto)
            self.store.listeners.append(self.offer)
            self.ready.set()
            return
        self.store.listeners.append(self.offer)
        self._counting = threading.Thread(
            target=self._count_behind, args=(upto,), name="ima-trends-count", daemon=True
        )
        self._counting.start()

    def _count_behind(self, upto: int) -> None:
        self.catch_up(upto_seq=upto)
        while True:
            with self._backlog_cond:
                while not self._backlog and not self._stopping:
                    self.ready.set()  # caught up with everything committed so far
                    self._backlog_cond.wait()
                if not self._backlog:  # stopping, and everything offered is counted
                    return
                pending, self._backlog, self._waiting = self._backlog, [], 0
            for posts in pending:
                self._count([(seq, entry) for seq, entry in posts if seq > upto])

    def catch_up(
        self, progress: Callable[[int], None] | None = None, upto_seq: int | None = None
    ) -> int:
        """Read the log past the mark (and back over `REBUILD_US` to rebuild counts), up
        to `upto_seq`; `progress` hears how many posts have been read, every 10,000."""
        newest = self.store.newest_created_us()
        if newest is None:
            return 0
        since = newest - REBUILD_US
        if self._mark:  # from before the last tick recorded, but never more than twice back
            since = max(newest - 2 * REBUILD_US, min(since, self._recorded_until - REBUILD_US))
        seen = 0

        def rows() -> Iterator[Row]:
            nonlocal seen
            for seq, created, ingested, author, spam, text in self.store.originals_since(
                since, upto_seq
            ):
                if self._stopping:
                    return
                yield seq, min(created, ingested), author, spam, text
                seen += 1
                if progress and seen % 10_000 == 0:
                    progress(seen)

        self._see(rows())
        return seen

    def offer(self, posts: list[tuple[int, Entry]]) -> None:
        """Store listener: hand newly committed originals to the counting thread (past
        `BACKLOG_LIMIT` waiting posts, further ones are not counted); counts them here
        when there is no thread for it."""
        if self._thread is None:
            self._count(posts)
            return
        with self._backlog_cond:
            if self._waiting < BACKLOG_LIMIT:
                self._backlog.append(posts)
                self._waiting += len(posts)
                self._backlog_cond.notify()
            else:
                self.dropped += len(posts)

    def _count(self, posts: list[tuple[int, Entry]]) -> None:
        self._see(
            (seq, min(flat[Flat.CREATED_US], flat[Flat.INGESTED_US]), flat[Flat.HANDLE],
             flat[Flat.SPAM], entry.text)
            for seq, entry in posts
            for flat in (entry.flat,)
        )  # fmt: skip

    def _see(self, rows: Iterable[Row]) -> None:
        """Count posts in log order, each at its `at_us`: its `created_at`, unless its
        clock is ahead of ours (then when it arrived), so that one post from the future
        cannot stop time. A batch is one loop with what it calls looked up once: this
        runs for every post ingest commits."""
        author_of, add = self._tellings.author_of, self.detector.add
        for seq, at_us, author, spam, text in rows:
            if self._next_tick is None:
                self._next_tick = (at_us // TICK_US + 1) * TICK_US
            if at_us >= self._next_tick:
                self._tick(self._next_tick)
                # after a silence, the next tick is the first boundary past this post
                self._next_tick = max(self._next_tick, at_us // TICK_US * TICK_US) + TICK_US
            if spam < SPAM_LIMIT and (teller := author_of(text, author.lower())):
                add(at_us, teller, items_of(text))
            if seq > self._mark:
                self._mark = seq

    def _tick(self, at_us: int) -> None:
        self.detector.advance(at_us)
        self.ticks += 1
        due = {
            name: self.detector.bursts(name)
            for name, every in self.every_us.items()
            if at_us % every == 0
        }
        # windows with nothing bursting and no story to end are skipped, but the tick is
        # still recorded: "as of" then says how recent the (empty) picture is
        due = {n: b for n, b in due.items() if b or self._books[n]}
        work = _Work(at_us, due, self._mark)
        if self._thread is None:
            self._build(work)
            return
        with self._cond:
            self._pending = work  # a newer tick replaces one not yet started
            self._cond.notify()

    # -- stories (beside the ingest path) ----------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._counted:
                    self._cond.wait()
                if self._pending is None:
                    return
                work, self._pending = self._pending, None
            try:
                self._build(work)
            except Exception:  # a failed tick must not stop trends; the next one retries
                log.exception("building stories failed at tick %d", work.at_us)

    def _build(self, work: _Work) -> None:
        versions: list[tuple[str, str, bool, dict[str, Any]]] = []
        for name, bursts in work.bursts.items():
            if not self._changed(name, bursts, work.at_us):
                continue
            fetch = self._posts[name].at(work.at_us, {b.item for b in bursts})
            drafts = group(bursts, fetch, work.at_us, self.detector.min_authors)
            versions += self._match(name, drafts, work.at_us)
        if work.at_us <= self._recorded_until:
            return  # replaying what an earlier run recorded
        self.history.record(work.at_us, versions, work.mark)

    def _changed(self, name: str, bursts: list[Burst], at_us: int) -> bool:
        """Has window `name`'s burst changed since its stories were last built? An item
        has started or stopped bursting or grown by `REBUILD_GROWTH`, a bucket of the
        window has passed (its oldest posts leave), or a story is due its refresh.
        Otherwise its stories stand as built, still bursting now; nothing is fetched or
        told again (searching and telling were most of what trends cost ingest)."""
        built_us, seen_us, counts = self._built.get(name, (-1, -1, {}))
        self._built[name] = (built_us, at_us, counts)
        book = self._books[name]
        if (
            not 0 <= at_us - built_us < self._bucket_us[name]
            or len(counts) != len(bursts)
            or any(b.count >= counts.get(b.item, 0) * (1 + REBUILD_GROWTH) for b in bursts)
            or any(at_us - self._recorded[sid][0] >= REFRESH_US for sid in book)
        ):
            self._built[name] = (at_us, at_us, {b.item: b.count for b in bursts})
            return True
        for story in book.values():
            if story.updated_us == seen_us:  # bursting at the last look: still is
                story.updated_us = at_us
        return False

    def _match(
        self, name: str, drafts: list[Draft], at_us: int
    ) -> list[tuple[str, str, bool, dict[str, Any]]]:
        book = self._books[name]
        span_us = self.spans_us[name]
        versions = []
        unmatched = dict(book)
        for draft in drafts:
            known = next((s for s in unmatched.values() if _same(s, draft)), None)
            if known is not None:
                del unmatched[known.id]
                sid, detected, first = known.id, known.detected_us, known.first_post_us
            else:
                sid, detected, first = story_id(name, draft.items[0], at_us), at_us, None
            story = tell(draft, name, span_us // MINUTE_US, at_us, sid, detected, first)
            book[sid] = story
            last = self._recorded.get(sid)
            signature = _signature(story)
            if last is None or last[1] != signature or at_us - last[0] >= REFRESH_US:
                self._recorded[sid] = (at_us, signature)
                versions.append((sid, name, False, story.to_json()))
        for story in unmatched.values():
            if at_us - story.updated_us >= span_us * LINGER_SPANS // 2:
                del book[story.id]
                self._recorded.pop(story.id, None)
                versions.append((story.id, name, True, story.to_json()))
        return versions

    def close(self) -> None:
        if self.offer in self.store.listeners:
            self.store.listeners.remove(self.offer)
        with self._backlog_cond:
            self._stopping = True
            self._backlog_cond.notify_all()
        if self._counting is not None:
            self._counting.join()  # counts what was offered first
        with self._cond:  # the last tick counted is built before the story thread ends
            self._counted = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        super().close()
