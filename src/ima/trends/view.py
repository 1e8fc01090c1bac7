"""The recorded stories, read back: at any instant, and as a feed of their changes.

Reading needs only the store and the history file, so the process that detects
trends (`ima serve`'s writer) and the processes that serve them (its API) share
what is recorded without sharing memory.
"""

from __future__ import annotations

from typing import Any

from ima.store import Store
from ima.trends.bursts import DEFAULT_WINDOWS, MINUTE_US
from ima.trends.history import History
from ima.trends.stories import summary_of

FILE = "trends.sqlite3"


class StoryView:
    """The stories of a store's trends, as recorded in its history file."""

    def __init__(
        self,
        store: Store,
        windows: tuple[tuple[str, int, int], ...] = DEFAULT_WINDOWS,
    ) -> None:
        self.store = store
        self.history = History(store.data_dir / FILE)
        self.spans_us = {name: span * MINUTE_US for name, span, _ in windows}

    def current(self, window: str, as_of_us: int | None = None) -> list[dict[str, Any]]:
        """The stories of `window` as they stood at `as_of_us` (default: the last tick).
        Posts deleted since are dropped from them, and so are the sentences quoting them."""
        if window not in self.spans_us:
            raise ValueError(f"unknown window {window!r}; one of {', '.join(self.spans_us)}")
        if as_of_us is None:
            as_of_us = self.history.state("tick_us")
        stories = self.history.at(window, as_of_us, self.spans_us[window])
        return [s for s in (_without_deleted(s, self.store) for s in stories) if s["citations"]]

    @property
    def update_seq(self) -> int:
        """The newest change recorded: where a feed of changes starts."""
        return self.history.last_version()

    def updates_since(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        """Changes recorded after `seq`, oldest first, each with its `ended` flag."""
        return self.history.since(seq)

    def close(self) -> None:
        self.history.close()


def _without_deleted(story: dict[str, Any], store: Store) -> dict[str, Any]:
    ids = [c["post_id"] for c in story["citations"]] + [p["post_id"] for p in story["top_posts"]]
    present = store.log.existing(ids)
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
        "top_posts": [p for p in story["top_posts"] if p["post_id"] in present],
    }
