"""Burst detection: which items are talked about far more than usual, right now.

Items (words, names, hashtags) are counted as *author-minutes*: an author counts once
per item per minute, however many posts they write, so one account's flood adds at
most one a minute (copies never get here: ingest collapses them). A window (5 min, 1 h,
24 h) sums its last few buckets of those counts. Its baseline is what the item did
before the window: an exponentially weighted count over the buckets that have left it
(so a burst never raises its own baseline) and the matching exposure in minutes.

The test is Gamma-Poisson: the item's rate is uncertain, with a weak Gamma prior
(`PRIOR_COUNT` author-minutes over `PRIOR_MINUTES`) updated by its baseline, so the
window's count is negative-binomial. An item bursts when its count is at least
`min_authors` and improbable under that law: its surprise, -log10 P(X >= count),
passes a threshold. A short history widens the law, so a word merely unseen in the
first minutes of a stream is not news, while one unseen for an hour and now said by
five people is.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from itertools import chain

PRIOR_COUNT = 0.01  # the Gamma prior: this many author-minutes ...
PRIOR_MINUTES = 0.5  # ... over this many minutes (weak: a day's history outweighs it)
MINUTE_US = 60_000_000
ANYONE = ""  # counted once per author-minute for every post: how many are posting
# with no baseline, an item may have been as common as the commonest ordinary words, said
# by this share of those posting (a busy stream's chatter words are a few percent each)
ORDINARY_SHARE = 0.03
COLD_SHARE = 0.2  # an item this share of those posting are on is news from the start
MAX_HELD = 3  # items held back by the first bucket passed on per window and tick


@dataclass(frozen=True, slots=True)
class Burst:
    item: str
    count: int
    expected: float  # the baseline's mean for the window
    surprise: float
    # said as much from the stream's first bucket: chatter, unless its posts show a topic
    # (`ima.trends.stories.group`)
    held: bool = False


def surprise(
    count: int, seen: float, exposure: float, minutes: float, prior: float = PRIOR_MINUTES
) -> float:
    """-log10 P(X >= count) where X, an item's author-minutes in `minutes`, is negative
    binomial: its rate is Gamma(PRIOR_COUNT + seen, prior + exposure), `prior` being
    the prior's minutes (`PRIOR_MINUTES`; none where it would outweigh what was heard:
    a stream's first seconds). The tail
    is bounded from above (so the surprise from below) by a geometric series:
    P(X >= x) <= pmf(x) / (1 - q), q bounding pmf(k + 1) / pmf(k) for k >= x."""
    r = PRIOR_COUNT + seen
    p = (prior + exposure) / (prior + exposure + minutes)
    if count <= r * (1 - p) / p:  # at or below the mean
        return 0.0
    q = (1 - p) * max(1.0, (count + r) / (count + 1))
    if q >= 1:
        return 0.0
    log_pmf = (math.lgamma(count + r) - math.lgamma(r) - math.lgamma(count + 1)
               + r * math.log(p) + count * math.log1p(-p))  # fmt: skip
    return max(0.0, -(log_pmf - math.log1p(-q)) / math.log(10))


class Window:
    """Counts over the last `span` minutes in `buckets` buckets, and each item's baseline."""

    def __init__(self, name: str, span: int, buckets: int = 5, half_life_spans: float = 12) -> None:
        if span % buckets:
            raise ValueError("a window's span must be a whole number of buckets")
        self.name = name
        self.span = span
        self.width = span // buckets
        self.n = buckets
        self.decay = 0.5 ** (1 / (buckets * half_life_spans))
        self.buckets: deque[tuple[int, Counter[str]]] = deque()
        self._total: Counter[str] | None = Counter()  # the buckets' sum, once asked for
        # item → weighted count as of bucket `_ref`, times decay ** (`_ref` - its last
        # bucket): one multiplication an item when a bucket leaves, not a power each
        self._seen: dict[str, float] = {}
        self._ref = 0
        self.start_us: int | None = None  # when the stream started being listened to
        self.minute = -1

    def listen_from(self, at_us: int) -> None:
        """The stream was being listened to from `at_us` on, posts or not: a quiet
        stretch is history (nothing was said), not a cold start."""
        self.start_us = at_us if self.start_us is None else min(self.start_us, at_us)

    @property
    def _first(self) -> int:
        """The bucket the stream started in."""
        return 0 if self.start_us is None else self.start_us // MINUTE_US // self.width

    @property
    def _unheard(self) -> float:
        """Minutes of the first bucket before the stream started: a stream seldom
        starts on a bucket's boundary, and that part of it saw nothing said."""
        if self.start_us is None:
            return 0.0
        return self.start_us / MINUTE_US - self._first * self.width

    @property
    def _oldest(self) -> int:
        """The oldest bucket still in the window."""
        return self.minute // self.width - self.n + 1

    @property
    def history(self) -> int:
        """Buckets the baseline has seen, quiet ones included."""
        return 0 if self.start_us is None else max(0, self._oldest - self._first)

    def add(self, minute: int, counts: Counter[str]) -> None:
        """A closed minute's author-minute counts."""
        self.minute = max(self.minute, minute)
        bucket = minute // self.width
        if self.start_us is None:
            self.start_us = minute * MINUTE_US
        if not self.buckets or self.buckets[-1][0] < bucket:
            self.buckets.append((bucket, Counter()))
        self.buckets[-1][1].update(counts)
        self._total = None
        self.advance(minute)

    @property
    def total(self) -> Counter[str]:
        """Each item's author-minutes in the window. Summed when asked, not kept up minute
        by minute: a window is judged at most once a tick (the 24h window every 48
        minutes; an instant computed from the log, once), and keeping three windows'
        sums up was most of what counting a day of the log cost."""
        if self._total is None:
            self._total = Counter()
            for _, counts in self.buckets:
                self._total.update(counts)
        return self._total

    def advance(self, minute: int) -> None:
        """Let buckets older than the window leave it, into the baseline."""
        self.minute = max(self.minute, minute)
        oldest = self._oldest
        while self.buckets and self.buckets[0][0] < oldest:
            bucket, counts = self.buckets.popleft()
            self._total = None
            self._leave(bucket, counts)

    def _leave(self, bucket: int, counts: Counter[str]) -> None:
        decay, seen = self.decay, self._seen
        if bucket - self._ref >= 64:  # weigh all as of now (and forget what decayed away)
            factor = decay ** (bucket - self._ref)
            self._seen = seen = {i: w for i, c in seen.items() if (w := c * factor) >= 0.01}
            self._ref = bucket
        scale = decay ** (self._ref - bucket)
        get = seen.get
        for item, count in counts.items():
            seen[item] = get(item, 0.0) + count * scale

    def said_before(self, item: str) -> float:
        """Weighted author-minutes of `item` before the window: its baseline's count."""
        return self._seen.get(item, 0.0) * self.decay ** (self._oldest - 1 - self._ref)

    def exposure(self) -> float:
        """Weighted minutes before the window (the same for every item): its baseline's
        exposure."""
        history = self.history
        exposure = self.width * (1 - self.decay**history) / (1 - self.decay)
        if history:  # the first bucket, the oldest that left, was not all heard
            exposure -= self._unheard * self.decay ** (history - 1)
        return exposure

    def first_heard(self, item: str, current: int, now_us: int) -> tuple[int, float]:
        """(author-minutes, minutes) of `item` in the stream's first bucket, as far as it
        was heard, while that is still in the window (once it has left, the baseline
        holds it); `current` is its count in the open minute, and it is now `now_us`. A
        stream seldom starts on a bucket's boundary, nor is a tick's minute over: the
        minutes are those posted in, and few of them make a wide law, not a rate."""
        start_us = now_us if self.start_us is None else self.start_us
        bucket = self._first
        minute = now_us // MINUTE_US
        if bucket < minute // self.width - self.n + 1:
            return 0, 0.0
        count = current if minute // self.width == bucket else 0
        if self.buckets and self.buckets[0][0] == bucket:
            count += self.buckets[0][1][item]
        heard = (min((bucket + 1) * self.width * MINUTE_US, now_us) - start_us) / MINUTE_US
        return count, max(0.0, heard)

    def covered_minutes(self) -> int:
        """How many minutes the window's buckets cover now (the newest is partial)."""
        return (self.n - 1) * self.width + self.minute % self.width + 1


DEFAULT_WINDOWS = (("5m", 5, 5), ("1h", 60, 5), ("24h", 1440, 5))


class BurstDetector:
    """Counts items as posts arrive; says which burst in each window.

    A window that has not yet seen `warm_up_spans` of history is *cold* (a stream just
    started): not knowing an item's past widens its law rather than silencing it. The
    item must be surprising under each law it may ordinarily follow: `ORDINARY_SHARE`
    of everyone posting (a common word), as if seen for one span; what history there
    is, over the minutes heard; and, unless `COLD_SHARE` of them are on it, what was
    said in the stream's first bucket, over the minutes heard of it (a stream seldom
    starts on a bucket's boundary: a first bucket heard for seconds is a wide law, not a
    rate). It must be said by `cold_authors` authors. So the words of ordinary chatter,
    all new to a new stream, are not news, while a topic that rose since the stream
    started is as soon as far more of its independent authors are on it than on any
    common word (50 of 400 posters, say), and one most of them are on is from the
    start. An item surprising but for the first bucket (on it from the start, but fewer
    than a fifth) is passed on *held*, at most `MAX_HELD` a window: chatter, unless its
    posts say its words together (`ima.trends.stories.group`)."""

    def __init__(
        self,
        windows: tuple[tuple[str, int, int], ...] = DEFAULT_WINDOWS,
        *,
        min_authors: int = 5,
        min_surprise: float = 6.0,
        warm_up_spans: float = 2.0,
        cold_authors: int = 25,
    ) -> None:
        self.windows = {name: Window(name, span, buckets) for name, span, buckets in windows}
        self.min_authors = min_authors
        self.min_surprise = min_surprise
        self.warm_up_spans = warm_up_spans
        self.cold_authors = cold_authors
        self.minute = -1
        self.started = False  # listened to since its first post, or since `listen_from`
        self.now_us = -1  # the newest post's time, or the clock's when it moved on
        self._counts: Counter[str] = Counter()  # the current minute's author-minutes
        self._seen: dict[str, set[str]] = {}  # author → items counted this minute
        self._new: list[set[str]] = []  # items first said this minute, not yet in `_counts`

    def listen_from(self, at_us: int) -> None:
        """The stream was listened to from `at_us` on (see `Window.listen_from`)."""
        self.started = True
        for window in self.windows.values():
            window.listen_from(at_us)

    def add(self, created_us: int, author: str, items: set[str]) -> None:
        """Count one post (`items` is kept: the caller must not change it). Posts from
        before the current minute count in it (late arrivals are rare, and an old post
        being seen now is still news now). Only what the author had not yet said this
        minute is noted; it is counted in one pass when the counts are next read
        (`current`), not post by post: counting is most of what trends cost ingest."""
        if not self.started:
            self.listen_from(created_us)
        if created_us > self.now_us:
            self.now_us = created_us
            if created_us // MINUTE_US > self.minute:
                self.advance(created_us)
        seen = self._seen.get(author)
        if seen is None:
            self._seen[author] = items
            self._new.append(items)
        else:
            new = items - seen
            if new:
                self._seen[author] = seen | new  # a new set: `seen` may wait in `_new`
                self._new.append(new)

    @property
    def current(self) -> Counter[str]:
        """The current minute's author-minutes (`ANYONE`: how many authors posted)."""
        if self._new:
            self._counts.update(chain.from_iterable(self._new))
            self._counts[ANYONE] = len(self._seen)
            self._new = []
        return self._counts

    def advance(self, at_us: int) -> None:
        """Move the clock (the newest post) to `at_us`, closing the current minute when
        time has moved past it."""
        self.now_us = max(self.now_us, at_us)
        minute = at_us // MINUTE_US
        if minute <= self.minute:
            return
        if self.minute >= 0:
            counts = self.current
            for window in self.windows.values():
                window.add(self.minute, counts)
                window.advance(minute)
        self.minute = minute
        self._counts = Counter()
        self._seen = {}
        self._new = []

    def warming_up(self, name: str) -> bool:
        window = self.windows[name]
        return window.history * window.width < self.warm_up_spans * window.span

    def bursts(self, name: str) -> list[Burst]:
        """Items bursting in window `name` now, most surprising first."""
        window = self.windows[name]
        cold = self.warming_up(name)
        current = self.current
        minutes = window.covered_minutes()
        everyone = window.total[ANYONE] + current[ANYONE]
        least = self.min_authors
        ordinary_rate = ORDINARY_SHARE * everyone / minutes  # a common word's, a minute
        if cold:
            # an item said no more than an ordinary word's share could be (the mean of
            # the law it is judged by below, from ORDINARY_SHARE) is no surprise: skip
            # the long tail of a new stream's words before judging each
            ordinary = ORDINARY_SHARE * everyone * window.span / (window.span + PRIOR_MINUTES)
            least = max(self.cold_authors, math.floor(ordinary))
        found, held = [], []
        total = window.total.get
        # an item the window holds fewer than `least` of must be in the current minute
        candidates = {i for i, c in current.items() if c + total(i, 0) >= least}
        candidates.update(i for i, c in window.total.items() if c >= least)
        candidates.discard(ANYONE)
        exposure, said_before = window.exposure(), window.said_before
        for item in candidates:
            count = total(item, 0) + current[item]
            seen, usual, prior = said_before(item), exposure, PRIOR_MINUTES
            if cold:  # judged by each law it may ordinarily follow; surprising under all
                laws = [(ordinary_rate * window.span, float(window.span), PRIOR_MINUTES)]
                if exposure:  # what history there is
                    laws.append((seen, exposure, 0.0))
                score, seen, usual, prior = min(
                    (surprise(count, s, e, minutes, p), s, e, p) for s, e, p in laws
                )
            else:
                score = surprise(count, seen, exposure, minutes)
            if score < self.min_surprise:
                continue
            expected = (PRIOR_COUNT + seen) / (prior + usual) * minutes
            if cold and count < COLD_SHARE * everyone:  # as said in the first bucket?
                said, heard = window.first_heard(item, current[item], self.now_us)
                first = surprise(count, said, heard, minutes, 0.0) if heard else score
                if first < self.min_surprise:
                    held.append(Burst(item, count, expected, score, held=True))
                    continue
                score = min(score, first)
            found.append(Burst(item, count, expected, score))
        found.sort(key=lambda b: (b.surprise, b.item), reverse=True)  # the same every run
        held.sort(key=lambda b: (b.surprise, b.item), reverse=True)
        return found + held[:MAX_HELD]
