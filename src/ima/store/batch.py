"""What goes into the store in one transaction, and what came of it.

Ingest turns a batch of records into a `Batch`; `Store.write` commits it whole or not
at all and answers with a `Commit`. These are the writing half of the store's face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(slots=True)
class Removals:
    """Posts leaving the log in a batch: `deleted` at their source (tombstoned), or
    `replaced` by a new version in the same batch."""

    deleted: Sequence[str] = ()
    replaced: Sequence[str] = ()
    deleted_us: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record ingest refused: why, and its raw bytes (for an operator to look at)."""

    at_us: int
    source: str
    kind: str
    reason: str
    raw: bytes


class Entry(NamedTuple):
    """A post on its way into the log, flat (`ima.post.flatten`); `text` is its prepared
    text, '' for a copy. `terms`: the text's terms, in order and space-separated
    (`ima.store.fresh.term_line`), when ingest analyzed it already (in its
    preparing processes), so that the committing process does not. A tuple, not an
    object: a batch holds thousands, each made and read once."""

    flat: tuple
    text: str
    terms: str | None = None


@dataclass(slots=True)
class Batch:
    """One transaction: new posts and copies, changes to stored ones, and bookkeeping."""

    #: new posts (and new versions of edited ones) and copies, in log order
    entries: list[Entry] = field(default_factory=list)
    #: (likes, reposts, replies, views, post id): counts a source reported anew
    metric_updates: list[tuple[int, int, int, int, str]] = field(default_factory=list)
    #: original's id -> copies of it in this batch
    copy_counts: dict[str, int] = field(default_factory=dict)
    #: (likes, reposts, replies, post id): counts to add (a live source's like events)
    engagements: list[tuple[int, int, int, str]] = field(default_factory=list)
    removals: Removals | None = None
    #: source -> its position in its stream once this batch is committed
    cursors: dict[str, str] = field(default_factory=dict)
    #: error kind -> records refused (or fields dropped) in this batch
    errors: dict[str, int] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Commit:
    """What a committed batch became: its entries' log positions, and the positions of
    posts it removed."""

    first_seq: int
    count: int
    removed: list[int]

    @property
    def seqs(self) -> range:
        return range(self.first_seq, self.first_seq + self.count)
