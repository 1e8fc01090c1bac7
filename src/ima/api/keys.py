"""API keys: shown once at creation, stored only as SHA-256 hashes.

A key looks like `ima-<id>-<secret>`; the id (8 hex characters) names it in lists and
logs, the secret never appears anywhere after `create` returns. Verification hashes
the presented key and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    hash TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
"""


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    name: str
    tier: str
    created: float
    revoked: float | None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def create(self, name: str, tier: str) -> tuple[Key, str]:
        """A new key; the returned secret is the only copy."""
        key_id = secrets.token_hex(4)
        secret = f"ima-{key_id}-{secrets.token_urlsafe(24)}"
        created = time.time()
        self._db().execute(
            "INSERT INTO keys (id, name, tier, hash, created) VALUES (?, ?, ?, ?, ?)",
            (key_id, name, tier, _hash(secret), created),
        )
        return Key(key_id, name, tier, created, None), secret

    def verify(self, presented: str) -> Key | None:
        """The live key `presented` is, or None (unknown, malformed or revoked)."""
        parts = presented.split("-", 2)
        if len(parts) != 3 or parts[0] != "ima" or len(presented) > 200:
            return None
        row = (
            self._db()
            .execute(
                "SELECT id, name, tier, hash, created, revoked FROM keys WHERE id = ?", (parts[1],)
            )
            .fetchone()
        )
        if row is None or not hmac.compare_digest(row[3], _hash(presented)):
            return None
        key = Key(row[0], row[1], row[2], row[4], row[5])
        return None if key.revoked is not None else key

    def list(self) -> list[Key]:
        rows = self._db().execute(
            "SELECT id, name, tier, created, revoked FROM keys ORDER BY created"
        )
        return [Key(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        cursor = self._db().execute(
            "UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id)
        )
        return cursor.rowcount == 1
