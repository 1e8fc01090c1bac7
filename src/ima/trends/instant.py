"""The stories at any instant, computed from the log: what trends are, whatever filled it.

Recorded history (what `ima serve` and `ima stream` keep up as posts arrive) is a cache
of this answer. Where it does not cover an instant T (never computed, pruned, or
computed before a late post arrived), the posts created in the `LOOKBACK_US` before T
are read back, counted in time order as they would have been live, and judged once, at
T: the windows before T are the baseline. A stretch with no posts is history (nothing
was said), not a cold start, as long as the log holds posts from before it. Where the
posts of the `LEARN_US` before T fit `MAX_POSTS`, all of them are read: the 24h window
then learns what is usual from a week, as live trends do (its memory has a half-life of
twelve days), and a story that built over a day is not its own baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from ima.ingest.flags import SPAM_LIMIT
from ima.post import Flat, Post, to_us
from ima.store import Store, Terms
from ima.text import analysis
from ima.trends.bursts import MINUTE_US, BurstDetector
from ima.trends.items import Tellings, items_of
from ima.trends.stories import Fetch, group, story_id, tell

log = logging.getLogger(__name__)

HOUR_US = 3600 * 1_000_000
LOOKBACK_US = 48 * HOUR_US  # the longest window, and one day before it to learn from
LEARN_US = 7 * 24 * HOUR_US  # read instead when its posts fit MAX_POSTS unsampled
MAX_POSTS = 1_000_000  # posts held at once; past it, a sample of them (see `_read`)
SHARE = 32  # a sample reads 1/SHARE of each minute (1/stride, if stride is smaller)
FETCH = 300  # posts fetched per bursting item
LATE_SCAN = 100_000  # posts after an answer's mark looked at for one created before it


def _plan(item: str) -> Terms | None:
    if item.startswith("#"):
        return Terms("tags", (analysis.fold(item[1:]),))
    tokens = tuple(analysis.terms(item))
    return Terms("text", tokens) if tokens else None


def fetcher(store: Store, low_us: int, high_us: int) -> Fetch:
    """The posts created in [low_us, high_us] that carry an item, as stories read them."""

    def fetch(item: str) -> list[tuple[Post, set[str]]]:
        plan = _plan(item)
        if plan is None:
            return []
        found = store.candidates(plan, low_us, high_us, FETCH).posts
        return [(sp.post, items_of(sp.indexed_text)) for sp in found]

    return fetch


class PostCache:
    """Each bursting item's posts in a window that slides with the ticks, fetched once:
    live, stories are built every 10 s of stream time over windows of up to a day, so
    each tick asks the store only for the posts created since the item's last fetch
    (the newest `2 * FETCH` are kept, with their items)."""

    def __init__(self, store: Store, span_us: int) -> None:
        self.store = store
        self.span_us = span_us
        # item → (fetched until, its posts newest first: (post, created_us, items))
        self._items: dict[str, tuple[int, list[tuple[Post, int, set[str]]]]] = {}

    def at(self, at_us: int, items: set[str]) -> Fetch:
        """The fetch for a tick at `at_us`; items no longer in `items` are forgotten."""
        low_us = at_us - self.span_us
        for item in [i for i in self._items if i not in items]:
            del self._items[item]

        def fetch(item: str) -> list[tuple[Post, set[str]]]:
            plan = _plan(item)
            if plan is None:
                return []
            since, known = self._items.get(item, (low_us, []))
            if since > at_us:  # time went back (a replay): start again
                since, known = low_us, []
            ids = {post.id for post, _, _ in known}
            found = self.store.candidates(plan, max(since, low_us), at_us, FETCH).posts
            kept = [entry for entry in known if entry[1] >= low_us]
            kept += [(sp.post, to_us(sp.post.created_at), items_of(sp.indexed_text))
                     for sp in found if sp.post.id not in ids]  # fmt: skip
            kept.sort(key=lambda entry: entry[1], reverse=True)
            del kept[2 * FETCH :]
            self._items[item] = (at_us, kept)
            return [(post, items) for post, _, items in kept]

        return fetch


def arrived_late(store: Store, mark: int, at_us: int) -> bool:
    """Has a post created at or before `at_us` been logged after seq `mark`? (Looks at
    the first `LATE_SCAN` posts after it: the work stays bounded on a long log.)"""
    for n, (_, flat, _) in enumerate(store.changes_since(mark)):
        if flat[Flat.CREATED_US] <= at_us:
            return True
        if n >= LATE_SCAN:
            return False
    return False


Row = tuple[int, int, str, str]  # created_us, seq, author, prepared text


def _stride(store: Store, low_us: int, high_us: int) -> int:
    """1 in how many posts of [low_us, high_us] to read, so that about `MAX_POSTS` are:
    a power of two, from an estimate (`_parts` at the finest share), as an exact count
    would walk the whole time index: only an estimate this small is checked by one."""
    probed = sum(store.count_created(lo, hi) for lo, hi, _ in _parts(low_us, high_us, SHARE))
    held = probed * SHARE
    if held < 4 * MAX_POSTS:
        held = store.count_created(low_us, high_us)
    stride = 1
    while held > MAX_POSTS * stride:
        stride *= 2
    return stride


def _parts(low_us: int, high_us: int, stride: int) -> list[tuple[int, int, int]]:
    """(low, high, every) of the reads that take 1 in `stride` posts of [low_us, high_us]:
    the first 1/`SHARE` (or 1/stride) of every minute, every `every`-th post by log
    position in it. Each minute is sampled alike, so that counts stay comparable minute
    to minute, and the time index is walked for those parts of minutes only."""
    if stride == 1:
        return [(low_us, high_us, 1)]
    share = min(stride, SHARE)
    span = MINUTE_US // share
    minutes = range(low_us // MINUTE_US, high_us // MINUTE_US + 1)
    parts = [(max(low_us, m * MINUTE_US), min(high_us, m * MINUTE_US + span - 1), stride // share)
             for m in minutes]  # fmt: skip
    return [(lo, hi, every) for lo, hi, every in parts if lo <= hi]


def _lookback(store: Store, at_us: int) -> tuple[int, int]:
    """(from when, 1 in how many) posts before `at_us` to read: `LEARN_US` back, all of
    them, where they fit `MAX_POSTS`; otherwise `LOOKBACK_US` back, sampled past it."""
    low_us = at_us - LOOKBACK_US
    stride = _stride(store, low_us, at_us)
    if stride == 1:
        held = store.count_created(low_us, at_us)
        held += store.count_created(at_us - LEARN_US, low_us - 1, MAX_POSTS - held)
        if held <= MAX_POSTS:
            return at_us - LEARN_US, 1
    return low_us, stride


def _read(
    store: Store,
    low_us: int,
    high_us: int,
    stride: int,
    progress: Callable[[int], None] | None,
) -> Iterator[Row]:
    """(created_us, seq, author, prepared text) of the originals created in [low_us,
    high_us], in time order, spam left out, 1 in `stride` of them (see `_parts`), so
    that the work stays bounded however busy the stream. The parts follow each other in
    time, so each is sorted on its own and counted as it comes: one part is held at once,
    not the whole sample."""
    read = 0
    for lo, hi, every in _parts(low_us, high_us, stride):
        found = list(store.originals_created(lo, hi, every))
        if progress and (read + len(found)) // 10_000 > read // 10_000:
            progress(read + len(found))
        read += len(found)
        kept = [(created, seq, author, text)
                for seq, created, author, spam, text in found if spam < SPAM_LIMIT]  # fmt: skip
        kept.sort()
        yield from kept
    if progress:
        progress(read)


def compute(
    store: Store,
    at_us: int,
    windows: tuple[tuple[str, int, int], ...],
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Each window's stories at `at_us`, from the log alone, strongest first."""
    low_us, stride = _lookback(store, at_us)
    if stride > 1:
        log.info("trends at %d computed from 1 in %d posts of the %d h before", at_us, stride,
                 LOOKBACK_US // HOUR_US)  # fmt: skip
    detector = BurstDetector(windows, warm_up_spans=1.0)
    # the stream was heard from its oldest post (copies and spam included) on
    detector.listen_from(max(low_us, store.oldest_created_us() or at_us))
    author_of, add = Tellings().author_of, detector.add
    for created, _, author, text in _read(store, low_us, at_us, stride, progress):
        if teller := author_of(text, author.lower()):
            add(created, teller, items_of(text))
    detector.advance(at_us)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, span, _ in windows:
        span_us = span * MINUTE_US
        drafts = group(detector.bursts(name), fetcher(store, at_us - span_us, at_us), at_us,
                       detector.min_authors)  # fmt: skip
        stories = []
        for draft in drafts:
            # the same story asked about at another instant keeps its id: its first post's
            first = min(draft.posts, key=lambda p: (p.created_at, p.id))
            sid = story_id(name, first.id)
            stories.append(tell(draft, name, span, at_us, sid, at_us).to_json())
        out[name] = stories
    return out
