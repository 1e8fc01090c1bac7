"""Stories over time, in SQLite, so `as_of` can show them as they stood at an instant.

Each material change of a story is a version row (its JSON as the API shows it); a
story that stops bursting gets a last version marked ended. The stories at instant T
are each story's newest version at or before T, unless that one ended it. The file
also keeps how far into the log trends have read (`mark`) and the last tick.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    story TEXT NOT NULL,
    window TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_by_time ON versions (window, at_us);
CREATE INDEX IF NOT EXISTS versions_by_story ON versions (story, at_us);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_SET = "INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
RETENTION_US = 7 * 24 * 3600 * 1_000_000  # versions older than this (stream time) go
LINGER_SPANS = 2  # a story not updated for this many window spans has ended


class History:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def state(self, key: str) -> int:
        """`mark` (the last log seq read) or `tick_us` (the last tick recorded); 0 if none."""
        with self._lock:
            return self._state(key)

    def _state(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else row[0]

    def record(self, at_us: int, versions: list[tuple[str, str, bool, dict[str, Any]]],
               mark: int) -> None:  # fmt: skip
        """Versions (story, window, ended, json) as of tick `at_us`, and the log mark."""
        rows = [(s, w, at_us, int(e), json.dumps(b, ensure_ascii=False)) for s, w, e, b in versions]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?)", rows)
            self._db.executemany(_SET, [("mark", mark), ("tick_us", at_us)])
            hour = at_us // 3_600_000_000
            if hour != self._state("pruned_hour"):
                self._db.execute("DELETE FROM versions WHERE at_us < ?", (at_us - RETENTION_US,))
                self._db.execute(_SET, ("pruned_hour", hour))
            self._db.execute("COMMIT")

    def at(self, window: str, as_of_us: int, span_us: int) -> list[dict[str, Any]]:
        """The stories of `window` as they stood at `as_of_us`, strongest first."""
        sql = """
            SELECT v.body FROM versions v
            WHERE v.window = ? AND v.at_us <= ? AND v.at_us > ? AND v.ended = 0
              AND v.at_us = (SELECT MAX(w.at_us) FROM versions w
                             WHERE w.story = v.story AND w.at_us <= ?)
        """
        low = as_of_us - LINGER_SPANS * span_us
        with self._lock:
            rows = self._db.execute(sql, (window, as_of_us, low, as_of_us)).fetchall()
        stories = [json.loads(body) for (body,) in rows]
        stories.sort(key=lambda s: s["surprise"], reverse=True)
        return stories

    def last_version(self) -> int:
        """The row number of the newest version recorded; 0 if none."""
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM versions").fetchone()[0]

    def since(self, rowid: int, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        """Versions recorded after row `rowid`, oldest first, each with its `ended` flag."""
        with self._lock:
            rows = self._db.execute(
                "SELECT rowid, ended, body FROM versions WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (rowid, limit),
            ).fetchall()
        return [(n, {**json.loads(body), "ended": bool(ended)}) for n, ended, body in rows]

    def versions(self, window: str) -> list[dict[str, Any]]:
        """Every recorded version of `window`'s stories, oldest first (for evaluation)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM versions WHERE window = ? AND ended = 0 ORDER BY at_us, rowid",
                (window,),
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
