"""Ingest grants: which keys may send posts, and which sources their posts may claim.

Reading is what tiers sell; writing into the store is trust. A key may `POST /v1/posts`
only when its tier includes ingest or it was granted it (`ima keys grant`). Its posts
belong to a source of its own, `api-<key id>`, unless it was granted named sources
(a relay of Bluesky, say): so a key can neither pass posts off as another source's nor
change the counts of posts it does not own. Grants live beside the keys, in the same
database, one short-lived connection per look (ingest requests are few).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    key_id TEXT PRIMARY KEY,
    sources TEXT NOT NULL,  -- space-separated source names the key's posts may claim
    granted REAL NOT NULL
);
"""


def own_source(key_id: str) -> str:
    """The source a key's posts belong to (a valid source name: `api-` and 8 hex)."""
    return f"api-{key_id}"


@contextlib.contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        conn.executescript(_SCHEMA)
        yield conn
    finally:
        conn.close()


def grant(path: Path, key_id: str, sources: list[str]) -> None:
    """Let `key_id` ingest, its posts claiming its own source or any of `sources`."""
    with _db(path) as conn:
        conn.execute(
            "INSERT INTO grants(key_id, sources, granted) VALUES (?, ?, ?) ON CONFLICT(key_id) "
            "DO UPDATE SET sources = excluded.sources, granted = excluded.granted",
            (key_id, " ".join(sorted(set(sources))), time.time()),
        )


def revoke(path: Path, key_id: str) -> bool:
    with _db(path) as conn:
        return conn.execute("DELETE FROM grants WHERE key_id = ?", (key_id,)).rowcount == 1


def granted(path: Path, key_id: str) -> frozenset[str] | None:
    """The sources `key_id` may claim, or None when it has no ingest grant."""
    with _db(path) as conn:
        row = conn.execute("SELECT sources FROM grants WHERE key_id = ?", (key_id,)).fetchone()
    return None if row is None else frozenset(row[0].split())
