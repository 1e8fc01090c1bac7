"""Stories over time, in SQLite, so `as_of` can show them as they stood at an instant.

Each material change of a story is a version row (its JSON as the API shows it); a
story that stops bursting gets a last version marked ended. The stories at instant T
are each story's newest version at or before T, unless that one ended it. The file
also keeps how far into the log trends have read (`mark`), each tick (when, and how far
into the log it had read), and the answers computed from the log for instants no tick
covered (`ima.trends.instant`): all of it a cache of what the log says, so pruning it
never makes an instant unanswerable.
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
CREATE TABLE IF NOT EXISTS ticks (at_us INTEGER PRIMARY KEY, mark INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    window TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    mark INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (window, at_us)
);
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
            self._db.execute("INSERT OR REPLACE INTO ticks VALUES (?, ?)", (at_us, mark))
            hour = at_us // 3_600_000_000
            if hour != self._state("pruned_hour"):
                for table in ("versions", "ticks", "answers"):
                    self._db.execute(f"DELETE FROM {table} WHERE at_us < ?",
                                     (at_us - RETENTION_US,))  # fmt: skip
                self._db.execute(_SET, ("pruned_hour", hour))
            self._db.execute("COMMIT")

    def tick_near(self, at_us: int, within_us: int) -> tuple[int, int] | None:
        """(at_us, mark) of the newest tick in (at_us - within_us, at_us], if any."""
        with self._lock:
            return self._db.execute(
                "SELECT at_us, mark FROM ticks WHERE at_us <= ? AND at_us > ? "
                "ORDER BY at_us DESC LIMIT 1",
                (at_us, at_us - within_us),
            ).fetchone()

    def record_answer(
        self, at_us: int, mark: int, stories: dict[str, list[dict[str, Any]]]
    ) -> None:
        """Each window's stories at `at_us`, computed from the log up to seq `mark`."""
        rows = [(w, at_us, mark, json.dumps(b, ensure_ascii=False)) for w, b in stories.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", rows)

    def answer(self, window: str, at_us: int) -> tuple[int, list[dict[str, Any]]] | None:
        """(mark, stories) computed for `window` at exactly `at_us`, if recorded."""
        with self._lock:
            row = self._db.execute(
                "SELECT mark, body FROM answers WHERE window = ? AND at_us = ?", (window, at_us)
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def recent(self, low_us: int, high_us: int, limit: int = 500) -> list[dict[str, Any]]:
        """The newest version of each story updated in [low_us, high_us] (recorded live or
        computed), newest first, at most `limit` rows read of each kind."""
        with self._lock:
            live = self._db.execute(
                "SELECT body FROM versions WHERE at_us BETWEEN ? AND ? AND ended = 0 "
                "ORDER BY at_us DESC LIMIT ?",
                (low_us, high_us, limit),
            ).fetchall()
            computed = self._db.execute(
                "SELECT body FROM answers WHERE at_us BETWEEN ? AND ? ORDER BY at_us DESC LIMIT ?",
                (low_us, high_us, limit),
            ).fetchall()
        found: dict[str, dict[str, Any]] = {}
        bodies = [json.loads(b) for (b,) in live]
        bodies += [s for (b,) in computed for s in json.loads(b)]
        for body in sorted(bodies, key=lambda b: b["updated_at"], reverse=True):
            found.setdefault(body["id"], body)
        return list(found.values())

    def story(self, story_id: str) -> dict[str, Any] | None:
        """A story's newest version, recorded live or computed, by its id."""
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM versions WHERE story = ? AND ended = 0 "
                "ORDER BY at_us DESC LIMIT 1",
                (story_id,),
            ).fetchone()
            if row is not None:
                return json.loads(row[0])
            window = story_id.split("-", 1)[0]
            for (body,) in self._db.execute(
                "SELECT body FROM answers WHERE window = ? AND body LIKE ? "
                "ORDER BY at_us DESC LIMIT 1",
                (window, f'%"{story_id}"%'),
            ):
                found = next((s for s in json.loads(body) if s["id"] == story_id), None)
                if found is not None:
                    return found
        return None

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
