"""Changes to stored posts that live sources report besides new posts.

A source hands these to the ingest pipeline like records; they are applied in
stream order, in the same transaction as the batch they fall in, so a delete
that follows a create (or an edit) can never be overtaken by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Delete:
    """The author deleted this post: it leaves the log and search, and stays gone
    (a tombstone stops a replayed create from bringing it back)."""

    post_id: str


@dataclass(frozen=True, slots=True)
class Engagement:
    """Counts to add to a stored post's metrics (a like or repost seen as its own event).
    Ignored when the post is not stored."""

    post_id: str
    likes: int = 0
    reposts: int = 0
    replies: int = 0


@dataclass(frozen=True, slots=True)
class Edit:
    """A new version of a post (a record in the replay schema): it replaces the stored
    text, or is stored as new if the original was never seen."""

    record: Any


@dataclass(frozen=True, slots=True)
class Cursor:
    """A source's position in its stream, committed in the same transaction as the
    batch it ends: a restart resumes exactly after what is stored."""

    source: str
    value: str
