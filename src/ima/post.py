"""The one type every stage shares: a normalized post."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(instant: datetime) -> str:
    """An instant as the API and stories write it: ISO 8601 with Z."""
    return instant.isoformat().replace("+00:00", "Z")


def to_us(instant: datetime) -> int:
    """Microseconds since the Unix epoch (naive means UTC); the store keeps instants so."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    # a float timestamp resolves ~0.5 µs until the year 2100: rounding is exact
    return round(instant.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@dataclass(slots=True)
class Author:
    handle: str
    name: str = ""
    followers: int | None = None


@dataclass(slots=True)
class Metrics:
    """Engagement as last reported by the source; later records overwrite it."""

    likes: int = 0
    reposts: int = 0
    replies: int = 0
    views: int = 0


@dataclass(slots=True)
class Flags:
    duplicate_of: str | None = None
    spam_score: float = 0.0
    injection_suspect: bool = False


@dataclass(slots=True)
class Post:
    """A post as stored: ids are `source:native_id`, instants are UTC."""

    id: str
    source: str
    author: Author
    text: str
    lang: str
    created_at: datetime
    ingested_at: datetime
    url: str = ""
    reply_to: str | None = None
    quote_of: str | None = None
    repost_of: str | None = None
    hashtags: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    flags: Flags = field(default_factory=Flags)
    #: copies (reposts, pasted floods) collapsed onto this post
    copies: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat().replace("+00:00", "Z")
        data["ingested_at"] = self.ingested_at.isoformat().replace("+00:00", "Z")
        return data


class Flat:
    """Positions in `flatten`'s tuple that the pipeline reads without rebuilding a Post."""

    ID, SOURCE, HANDLE, TEXT, LANG, CREATED_US, INGESTED_US = 0, 1, 2, 5, 6, 7, 8
    REPOST_OF, HASHTAGS, MENTIONS, METRICS, DUPLICATE_OF, SPAM = 12, 13, 14, slice(16, 20), 20, 21


def flatten(p: Post) -> tuple:
    """The post as a flat tuple of plain values (lists as space-joined strings: none of
    hashtags, mentions or links contains a space): the log's row, the wire form."""
    return (
        p.id, p.source, p.author.handle, p.author.name, p.author.followers, p.text, p.lang,
        to_us(p.created_at), to_us(p.ingested_at), p.url, p.reply_to, p.quote_of, p.repost_of,
        " ".join(p.hashtags), " ".join(p.mentions), " ".join(p.links),
        p.metrics.likes, p.metrics.reposts, p.metrics.replies, p.metrics.views,
        p.flags.duplicate_of, p.flags.spam_score, int(p.flags.injection_suspect), p.copies,
    )  # fmt: skip


def unflatten(f: Sequence[Any]) -> Post:
    return Post(
        id=f[0], source=f[1], author=Author(f[2], f[3], f[4]), text=f[5], lang=f[6],
        created_at=from_us(f[7]), ingested_at=from_us(f[8]), url=f[9], reply_to=f[10],
        quote_of=f[11], repost_of=f[12], hashtags=f[13].split(), mentions=f[14].split(),
        links=f[15].split(), metrics=Metrics(f[16], f[17], f[18], f[19]),
        flags=Flags(duplicate_of=f[20], spam_score=f[21], injection_suspect=bool(f[22])),
        copies=f[23],
    )  # fmt: skip
