"""The stories at any instant: recorded as they happened where that covers it, computed
from the log where it does not; and a feed of their changes.

Reading needs only the store and the history file, so the process that detects
trends (`ima serve`'s writer) and the processes that serve them (its API) share
what is recorded without sharing memory. Any of them may compute an instant no tick
covered (`ima.trends.instant`); what it computed is recorded for the next to ask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ima.store import Store
from ima.text import analysis
from ima.trends.bursts import DEFAULT_WINDOWS, MINUTE_US
from ima.trends.history import History
from ima.trends.instant import arrived_late, compute
from ima.trends.stories import summary_of

FILE = "trends.sqlite3"
TICK_US = 10_000_000  # stream time between looks at the shortest window
LATE_GRACE_US = 5 * MINUTE_US  # a post this much older than a tick, logged after it, is late


class StoryView:
    """The stories of a store's trends, at any instant it covers."""

    _computing = threading.Lock()  # one computation at a time; the next asker reads it

    def __init__(
        self,
        store: Store,
        windows: tuple[tuple[str, int, int], ...] = DEFAULT_WINDOWS,
    ) -> None:
        self.store = store
        self.windows = windows
        self.history = History(store.data_dir / FILE)
        self.spans_us = {name: span * MINUTE_US for name, span, _ in windows}
        #: how often a window is looked at live (its span / 30, in whole ticks)
        self.every_us = {
            n: max(TICK_US, s // 30 // TICK_US * TICK_US) for n, s in self.spans_us.items()
        }

    def now(self) -> int:
        """Stream time: the last tick, or the newest post when trends have not read it."""
        tick = self.history.state("tick_us")
        if tick and self.history.state("mark") >= self.store.newest_seq():
            return tick
        return max(tick, self.store.newest_created_us() or 0)

    def current(
        self,
        window: str,
        as_of_us: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The stories of `window` as they stood at `as_of_us` (default: now), strongest
        first; `progress` hears of posts read when they must be computed from the log.
        Posts deleted since are dropped from them, and so are the sentences quoting them."""
        if window not in self.spans_us:
            raise ValueError(f"unknown window {window!r}; one of {', '.join(self.spans_us)}")
        if as_of_us is None:
            as_of_us = self.now()
        stories = self._at(window, as_of_us, progress)
        return [s for s in (_without_deleted(s, self.store) for s in stories) if s["citations"]]

    def across(
        self, as_of_us: int | None = None, progress: Callable[[int], None] | None = None
    ) -> list[dict[str, Any]]:
        """The strongest stories of all windows, each once (in the shortest window it is
        bursting in when it bursts in several), strongest first."""
        if as_of_us is None:
            as_of_us = self.now()
        found: list[dict[str, Any]] = []
        for name in self.spans_us:
            for story in self.current(name, as_of_us, progress):
                if not any(_same_story(story, other) for other in found):
                    found.append(story)
        found.sort(key=lambda s: s["surprise"], reverse=True)
        return found

    def search(
        self, words: list[str], max_age_us: int, limit: int, as_of_us: int | None = None
    ) -> list[dict[str, Any]]:
        """Stories updated within `max_age_us` of now whose title, key words, summary or
        names carry every one of `words` (analyzed terms), strongest first."""
        now = self.now() if as_of_us is None else as_of_us
        found = {s["id"]: s for s in self.history.recent(now - max_age_us, now)}
        found.update((s["id"], s) for s in self.across(now))
        wanted = set(words)
        # each story as `story` gives it (its newest version), so that the list and a
        # look-up by id agree whichever of its versions matched
        hits = [self.story(s["id"]) or s for s in found.values() if wanted <= _terms_of(s)]
        hits = [s for s in (_without_deleted(s, self.store) for s in hits) if s["citations"]]
        hits.sort(key=lambda s: s["surprise"], reverse=True)
        return hits[:limit]

    def story(self, story_id: str) -> dict[str, Any] | None:
        """A story by id, as last recorded or computed (posts deleted since dropped)."""
        found = self.history.story(story_id)
        if found is None:
            return None
        found = _without_deleted(found, self.store)
        return found if found["citations"] else None

    def _at(self, window: str, at_us: int, progress: Callable[[int], None] | None
            ) -> list[dict[str, Any]]:  # fmt: skip
        tick = self.history.tick_near(at_us, self.every_us[window] + TICK_US)
        if tick is not None and not arrived_late(self.store, tick[1], tick[0] - LATE_GRACE_US):
            return self.history.at(window, at_us, self.spans_us[window])
        answer = self._answer(window, at_us)
        if answer is not None:
            return answer
        with self._computing:
            answer = self._answer(window, at_us)  # another asker may have just computed it
            if answer is not None:
                return answer
            mark = self.store.newest_seq()
            stories = compute(self.store, at_us, self.windows, progress)
            self.history.record_answer(at_us, mark, stories)
        return stories[window]

    def _answer(self, window: str, at_us: int) -> list[dict[str, Any]] | None:
        recorded = self.history.answer(window, at_us)
        if recorded is None or arrived_late(self.store, recorded[0], at_us):
            return None
        return recorded[1]

    @property
    def update_seq(self) -> int:
        """The newest change recorded: where a feed of changes starts."""
        return self.history.last_version()

    def updates_since(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        """Changes recorded after `seq`, oldest first, each with its `ended` flag."""
        return self.history.since(seq)

    def close(self) -> None:
        self.history.close()


def _terms_of(story: dict[str, Any]) -> set[str]:
    names = [n for kind in story.get("entities", {}).values() for n in kind]
    text = " ".join([story["title"], story["summary"], *story["items"], *names])
    return set(analysis.terms(text))


def _same_story(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two windows' stories of one event: they cite or lead with the same posts."""
    posts = {c["post_id"] for c in a["citations"]} | {p["post_id"] for p in a["top_posts"]}
    return bool(posts & ({c["post_id"] for c in b["citations"]}
                         | {p["post_id"] for p in b["top_posts"]}))  # fmt: skip


def _without_deleted(story: dict[str, Any], store: Store) -> dict[str, Any]:
    ids = [c["post_id"] for c in story["citations"]] + [p["post_id"] for p in story["top_posts"]]
    present = store.existing(ids)
    if len(present) == len(set(ids)):
        return story
    kept = [c for c in story["citations"] if c["post_id"] in present]
    renumber = {c["number"]: n for n, c in enumerate(kept, 1)}
    sentences = [(s["text"], renumber[s["citation"]]) for s in story["sentences"]
                 if s["citation"] in renumber]  # fmt: skip
    return {
        **story,
        "citations": [{**c, "number": renumber[c["number"]]} for c in kept],
        "sentences": [{"text": t, "citation": n} for t, n in sentences],
        "summary": summary_of(sentences, story["lang"]),
        "hook": summary_of(sentences[:1], story["lang"]),
        "top_posts": [p for p in story["top_posts"] if p["post_id"] in present],
    }
