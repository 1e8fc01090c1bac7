"""The one type every stage shares: a normalized post."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(instant: datetime) -> int:
    """Microseconds since the Unix epoch (naive means UTC); the store keeps instants so."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return (instant - EPOCH) // timedelta(microseconds=1)


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
