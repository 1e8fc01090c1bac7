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

from ima.config import private_file

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
    """Keys in one SQLite file, through one connection that threads take in turn: a
    lookup by primary key takes microseconds, and a connection per thread left three
    file descriptors behind each of the server's worker threads that came and went."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(private_file(path), timeout=10, isolation_level=None,
                                     check_same_thread=False)  # fmt: skip
        self._turn = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def _rows(self, sql: str, params: tuple = ()) -> tuple[list[tuple], int]:
        """All rows of one statement, and how many rows it changed."""
        with self._turn:
            cursor = self._conn.execute(sql, params)
            return cursor.fetchall(), cursor.rowcount

    def create(self, name: str, tier: str) -> tuple[Key, str]:
        """A new key; the returned secret is the only copy."""
        key_id = secrets.token_hex(4)
        secret = f"ima-{key_id}-{secrets.token_urlsafe(24)}"
        created = time.time()
        self._rows(
            "INSERT INTO keys (id, name, tier, hash, created) VALUES (?, ?, ?, ?, ?)",
            (key_id, name, tier, _hash(secret), created),
        )
        return Key(key_id, name, tier, created, None), secret

    def verify(self, presented: str) -> Key | None:
        """The live key `presented` is, or None (unknown, malformed or revoked)."""
        parts = presented.split("-", 2)
        if len(parts) != 3 or parts[0] != "ima" or len(presented) > 200:
            return None
        rows, _ = self._rows(
            "SELECT id, name, tier, hash, created, revoked FROM keys WHERE id = ?", (parts[1],)
        )
        if not rows or not hmac.compare_digest(rows[0][3], _hash(presented)):
            return None
        row = rows[0]
        key = Key(row[0], row[1], row[2], row[4], row[5])
        return None if key.revoked is not None else key

    def list(self) -> list[Key]:
        rows, _ = self._rows("SELECT id, name, tier, created, revoked FROM keys ORDER BY created")
        return [Key(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        _, changed = self._rows(
            "UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id)
        )
        return changed == 1

    def close(self) -> None:
        with self._turn:
            self._conn.close()
