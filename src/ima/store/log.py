"""The post log: SQLite in WAL mode, the source of truth every index derives from.

One writer (the ingest pipeline) appends batches in single transactions; readers on
other threads open their own connections. `seq` is the log's own order: the
lexical index's high-water mark is a `seq`, so catching up after a crash is
"index everything after it".
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import chain
from pathlib import Path

from ima.post import Post, unflatten
from ima.sqlite_pool import IN_LIST, ConnectionPool
from ima.store.batch import Batch, DeadLetter, Entry
from ima.text import analysis

_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    author TEXT NOT NULL,
    author_name TEXT NOT NULL,
    followers INTEGER,
    text TEXT NOT NULL,
    lang TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    ingested_us INTEGER NOT NULL,
    url TEXT NOT NULL,
    reply_to TEXT,
    quote_of TEXT,
    repost_of TEXT,
    hashtags TEXT NOT NULL,
    mentions TEXT NOT NULL,
    links TEXT NOT NULL,
    likes INTEGER NOT NULL,
    reposts INTEGER NOT NULL,
    replies INTEGER NOT NULL,
    views INTEGER NOT NULL,
    duplicate_of TEXT,
    spam REAL NOT NULL,
    injection INTEGER NOT NULL,
    copies INTEGER NOT NULL DEFAULT 0,
    indexed_text TEXT NOT NULL,
    terms TEXT
);
-- hashtags, mentions and links hold space-separated lists: none contains a space.
-- indexed_text is the text as the lexical index sees it (ima.text.analysis.prepare), or ''
-- for copies, which are not indexed. terms: its terms, space-separated
-- (ima.store.fresh.term_line), as ingest analyzed them; NULL where not known (copies, and
-- rows stored before the column existed), then analyzed again when read.
-- time ranges (trends at any instant, the newest and oldest post) read by creation time
CREATE INDEX IF NOT EXISTS posts_created ON posts(created_us);
CREATE TABLE IF NOT EXISTS errors (kind TEXT PRIMARY KEY, count INTEGER NOT NULL);
-- ids deleted at their source: a replayed create of one of them is not stored again.
-- each live source's position in its stream as of the last committed batch
CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, deleted_us INTEGER NOT NULL)
    WITHOUT ROWID;
-- records refused at ingest, with their raw bytes (cut at DEAD_LETTER_BYTES), newest kept
CREATE TABLE IF NOT EXISTS dead_letters (
    n INTEGER PRIMARY KEY,
    at_us INTEGER NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
"""
DEAD_LETTERS_KEPT = 10_000
DEAD_LETTER_BYTES = 64 * 1024
READERS = 8  # reader connections open at most (reads waiting for one queue)
READ_CACHE_KIB = 2048  # page cache of a connection that reads
WRITE_CACHE_KIB = 65536  # page cache of the writing process's connection

COLUMNS = (  # a post row, in the order `StoredPost` reads it
    "seq, id, source, author, author_name, followers, text, lang, created_us, ingested_us, "
    "url, reply_to, quote_of, repost_of, hashtags, mentions, links, likes, reposts, replies, "
    "views, duplicate_of, spam, injection, copies, indexed_text"
)
#: rows one INSERT statement carries. `executemany` lets the interpreter lock go for
#: every row it steps, and with other threads of the process wanting it, the committing
#: thread waited for it back each time (README "Performance notes": 86–136 µs a row of
#: wall time, against 16 at 64 rows a statement). One statement a row count up to it is
#: compiled, and cached by the connection (which keeps 128).
ROWS_A_STATEMENT = 64


@cache
def _insert(rows: int) -> str:
    """The INSERT of `rows` posts."""
    values = f"({', '.join('?' * 27)})"
    return f"INSERT INTO posts ({COLUMNS}, terms) VALUES {', '.join([values] * rows)}"

_ROW = f"{COLUMNS}, terms"  # what readers select: a post row, then its terms if known
_MAX_SEQ = 2**63 - 1
_UPDATE_METRICS = "UPDATE posts SET likes=?, reposts=?, replies=?, views=? WHERE id=?"
_ADD_COPIES = "UPDATE posts SET copies = copies + ? WHERE id=?"
_ADD_ENGAGEMENT = (
    "UPDATE posts SET likes = MAX(0, likes + ?), reposts = MAX(0, reposts + ?), "
    "replies = MAX(0, replies + ?) WHERE id=?"
)


def create_empty_log(path: Path) -> None:
    """An empty log at `path` with the store's schema, for tools that fill it in bulk."""
    PostLog(path).close()


@dataclass(slots=True)
class StoredPost:
    """A post as read back from the log, with its log position and indexed text."""

    seq: int
    post: Post
    indexed_text: str
    _terms: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def terms(self) -> list[str]:
        """The indexed terms, as ingest stored them or analyzed once: ranking reads them
        several times."""
        if self._terms is None:
            self._terms = analysis.terms_of_prepared(self.indexed_text)
        return self._terms


def _row_values(seq: int, entry: Entry) -> tuple:
    return (seq, *entry.flat, entry.text, entry.terms)


def _from_row(r: Sequence) -> StoredPost:
    """From a row of `_ROW`."""
    terms = None if r[26] is None else r[26].split()
    return StoredPost(seq=r[0], post=unflatten(r[1:25]), indexed_text=r[25], _terms=terms)


class PostLog:
    """Append-only SQLite log of posts; metrics and copy counts are updated in place."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._readers = ConnectionPool(self._reader, READERS)
        self._read = self._readers.rows
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        columns = {row[1] for row in self._writer.execute("PRAGMA table_info(posts)")}
        if "terms" not in columns:  # a log from before ingest stored terms
            self._writer.execute("ALTER TABLE posts ADD COLUMN terms TEXT")
        # Checkpoints (copying the WAL into the database, with an fsync) would otherwise
        # land inside some batch's commit; `checkpoint` runs them off the write path.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer: sqlite3.Connection | None = None
        row = self._writer.execute("SELECT COALESCE(MAX(seq), 0) FROM posts").fetchone()
        self.last_seq: int = row[0]

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        # Reads of the database file go through its memory map (256 MiB; the kernel's
        # pages, shared and reclaimable); the page cache holds what the map does not
        # cover, the WAL's newest pages, and is kept small: a process that only reads
        # (the API, answerers) has up to READERS + 1 of these, and a large one per
        # connection grew with the store until each was full.
        conn.execute(f"PRAGMA cache_size=-{READ_CACHE_KIB}")
        conn.execute("PRAGMA mmap_size=268435456")
        return conn

    def expect_writes(self) -> None:
        """The writing process: the id index is hit by every insert and every "already
        stored?" lookup, so its one writing connection keeps it in memory."""
        self._writer.execute(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")

    def _reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only=1")
        return conn

    def existing(self, ids: Iterable[str]) -> dict[str, int]:
        """Map of the given ids already in the log to their seq."""
        sql = f"SELECT id, seq FROM posts WHERE id {IN_LIST}"
        return dict(self._writer.execute(sql, (json.dumps(list(ids)),)))

    def tombstoned(self, ids: Iterable[str]) -> set[str]:
        """Those of the given ids that were deleted at their source."""
        sql = f"SELECT id FROM tombstones WHERE id {IN_LIST}"
        return {r[0] for r in self._writer.execute(sql, (json.dumps(list(ids)),))}

    def _remove(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[int]:
        """Delete rows (and their copies' counts on originals); returns the removed seqs."""
        removed: list[int] = []
        for post_id in ids:
            row = conn.execute(
                "DELETE FROM posts WHERE id = ? RETURNING seq, duplicate_of", (post_id,)
            ).fetchone()
            if row is None:
                continue
            removed.append(row[0])
            if row[1] is not None:
                conn.execute("UPDATE posts SET copies = MAX(0, copies - 1) WHERE id=?", (row[1],))
        return removed

    def append(self, first_seq: int, batch: Batch) -> list[int]:
        """Write one batch in one transaction: all of it is durable, or none of it.
        Removals go first (a replaced post is inserted again); returns removed seqs."""
        conn = self._writer
        removed: list[int] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            removals = batch.removals
            if removals is not None:
                removed = self._remove(conn, [*removals.deleted, *removals.replaced])
                conn.executemany(
                    "INSERT OR IGNORE INTO tombstones(id, deleted_us) VALUES (?, ?)",
                    [(pid, removals.deleted_us) for pid in removals.deleted],
                )
            rows = [_row_values(first_seq + i, e) for i, e in enumerate(batch.entries)]
            for start in range(0, len(rows), ROWS_A_STATEMENT):
                chunk = rows[start : start + ROWS_A_STATEMENT]
                conn.execute(_insert(len(chunk)), list(chain.from_iterable(chunk)))
            if batch.metric_updates:
                conn.executemany(_UPDATE_METRICS, batch.metric_updates)
            if batch.copy_counts:
                conn.executemany(_ADD_COPIES, [(n, p) for p, n in batch.copy_counts.items()])
            if batch.engagements:
                conn.executemany(_ADD_ENGAGEMENT, batch.engagements)
            if batch.cursors:
                conn.executemany(
                    "INSERT OR REPLACE INTO cursors(source, value) VALUES (?, ?)",
                    list(batch.cursors.items()),
                )
            if batch.errors:
                conn.executemany(
                    "INSERT INTO errors(kind, count) VALUES (?, ?) "
                    "ON CONFLICT(kind) DO UPDATE SET count = count + excluded.count",
                    list(batch.errors.items()),
                )
            if batch.dead_letters:
                self._keep_dead_letters(conn, batch.dead_letters)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if batch.entries:
            self.last_seq = max(self.last_seq, first_seq + len(batch.entries) - 1)
        return removed

    @staticmethod
    def _keep_dead_letters(conn: sqlite3.Connection, letters: Sequence[DeadLetter]) -> None:
        conn.executemany(
            "INSERT INTO dead_letters(at_us, source, kind, reason, raw) VALUES (?, ?, ?, ?, ?)",
            [(d.at_us, d.source, d.kind, d.reason[:500], d.raw[:DEAD_LETTER_BYTES])
             for d in letters[-DEAD_LETTERS_KEPT:]],
        )  # fmt: skip
        conn.execute(
            "DELETE FROM dead_letters WHERE n <= (SELECT MAX(n) FROM dead_letters) - ?",
            (DEAD_LETTERS_KEPT,),
        )

    def checkpoint(self, min_wal_bytes: int = 64 * 1024 * 1024) -> None:
        """Copy committed WAL pages into the database once the WAL has grown past
        `min_wal_bytes`. Its fsyncs stall the writer for a moment, so rarely is better."""
        try:
            if os.stat(f"{self.path}-wal").st_size < min_wal_bytes:
                return
        except FileNotFoundError:
            return
        if self._checkpointer is None:
            self._checkpointer = self._connect()
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _at_once(self, columns: str, rest: str, params: Sequence) -> list[tuple]:
        """The rows of `SELECT columns rest`, read in one step of SQLite, as one JSON
        array. Python's sqlite3 lets the interpreter lock go for each row it steps, and
        with another thread of the process wanting it, waits for it back each time
        (README "Performance notes": 61–127 µs a row so, against 19–39 at once; with no
        other thread, 1 against 2). Values come back as stored: text, integers, NULL,
        and the one REAL column, `spam`, which is rounded to three places."""
        sql = f"SELECT json_group_array(json_array({columns})) FROM (SELECT {columns} {rest})"
        return [tuple(row) for row in json.loads(self._read(sql, params)[0][0])]

    def fetch(self, seqs: Sequence[int]) -> dict[int, StoredPost]:
        rows = self._at_once(_ROW, f"FROM posts WHERE seq {IN_LIST}", (json.dumps(seqs),))
        return {r[0]: _from_row(r) for r in rows}

    def indexed_terms(self, seqs: Sequence[int]) -> dict[int, list[str]]:
        """The indexed terms of each of these log positions still stored (cheaper than
        `fetch`: what ranking a pool of matches needs, no `Post` built)."""
        rows = self._at_once(
            "seq, indexed_text, terms", f"FROM posts WHERE seq {IN_LIST}", (json.dumps(seqs),)
        )
        return {
            seq: analysis.terms_of_prepared(text) if terms is None else terms.split()
            for seq, text, terms in rows
        }

    def get(self, post_id: str) -> StoredPost | None:
        sql = f"SELECT {_ROW} FROM posts WHERE id = ?"
        rows = self._read(sql, (post_id,))
        return _from_row(rows[0]) if rows else None

    def scan(
        self, after_seq: int = 0, upto_seq: int | None = None
    ) -> Iterator[tuple[int, tuple, str, str | None]]:
        """(seq, flat post, indexed text, its terms if stored) of the originals (the
        indexed posts) in log order after `after_seq` (up to `upto_seq`), read in pages;
        rows as stored, no `Post` objects built (`ima.post.flatten`'s form: what the
        index and the fresh segment need)."""
        while True:  # pages are fetched whole: no read is left open between them
            page = self._at_once(
                _ROW,
                "FROM posts WHERE seq > ? AND seq <= ? AND duplicate_of IS NULL "
                "ORDER BY seq LIMIT 5000",
                (after_seq, _MAX_SEQ if upto_seq is None else upto_seq),
            )
            page.sort()  # in log order, whatever order the aggregate met them in
            if not page:
                return
            for r in page:
                yield r[0], r[1:25], r[25], r[26]
            after_seq = page[-1][0]

    def newest_seq(self) -> int:
        """The last position in the log as stored (another process may be appending)."""
        return self._read("SELECT COALESCE(MAX(seq), 0) FROM posts")[0][0]

    def newest_created_us(self) -> int | None:
        return self._read("SELECT MAX(created_us) FROM posts")[0][0]

    def oldest_created_us(self) -> int | None:
        return self._read("SELECT MIN(created_us) FROM posts")[0][0]

    def count_created(self, low_us: int, high_us: int, most: int | None = None) -> int:
        """Posts (originals and copies) created in [low_us, high_us]: an index count,
        which stops past `most` when given."""
        if most is None:
            sql, args = "SELECT COUNT(*) FROM posts WHERE created_us BETWEEN ? AND ?", ()
        else:
            sql = ("SELECT COUNT(*) FROM (SELECT 1 FROM posts WHERE created_us BETWEEN ? AND ? "
                   "LIMIT ?)")  # fmt: skip
            args = (most + 1,)
        return self._read(sql, (low_us, high_us, *args))[0][0]

    def originals_created(
        self, low_us: int, high_us: int, every: int = 1
    ) -> Iterator[tuple[int, int, str, float, str]]:
        """(seq, created_us, author, spam, indexed_text) of the originals created in
        [low_us, high_us], those whose seq is a multiple of `every` (a sample SQLite takes
        from the index before reading a row), in no particular order."""
        conn = self._connect()
        try:
            yield from conn.execute(
                "SELECT seq, created_us, author, spam, indexed_text FROM posts "
                "WHERE created_us BETWEEN ? AND ? AND seq % ? = 0 AND duplicate_of IS NULL",
                (low_us, high_us, every),
            )
        finally:
            conn.close()

    def originals_since(
        self, created_us: int, upto_seq: int | None = None
    ) -> Iterator[tuple[int, int, int, str, float, str]]:
        """(seq, created_us, ingested_us, author, spam, indexed_text) of originals created at
        or after `created_us` (up to `upto_seq`), in log order: what trend counting reads
        back after a restart."""
        conn = self._connect()
        try:
            yield from conn.execute(
                "SELECT seq, created_us, ingested_us, author, spam, indexed_text FROM posts "
                "WHERE created_us >= ? AND seq <= ? AND duplicate_of IS NULL ORDER BY seq",
                (created_us, self.last_seq if upto_seq is None else upto_seq),
            )
        finally:
            conn.close()

    def recent_originals(self, limit: int) -> list[StoredPost]:
        sql = f"SELECT {_ROW} FROM posts WHERE duplicate_of IS NULL ORDER BY seq DESC LIMIT ?"
        return [_from_row(r) for r in self._read(sql, (limit,))][::-1]

    def newest_originals(self, low_us: int, high_us: int, limit: int) -> list[StoredPost]:
        """The `limit` originals created last in [low_us, high_us], newest first."""
        sql = (
            f"SELECT {_ROW} FROM posts WHERE created_us BETWEEN ? AND ? "
            "AND duplicate_of IS NULL ORDER BY created_us DESC LIMIT ?"
        )
        return [_from_row(r) for r in self._read(sql, (low_us, high_us, limit))]

    def counts(self) -> dict[str, int]:
        total, copies = self._read("SELECT COUNT(*), COUNT(duplicate_of) FROM posts")[0]
        return {"posts": total, "copies": copies, "originals": total - copies}

    def cursor(self, source: str) -> str | None:
        """The position `source` had reached as of the last committed batch."""
        rows = self._read("SELECT value FROM cursors WHERE source = ?", (source,))
        return rows[0][0] if rows else None

    def error_counts(self) -> dict[str, int]:
        return dict(self._read("SELECT kind, count FROM errors ORDER BY kind"))

    def dead_letters(self, limit: int = 20) -> list[DeadLetter]:
        """The newest records ingest refused, newest first."""
        sql = "SELECT at_us, source, kind, reason, raw FROM dead_letters ORDER BY n DESC LIMIT ?"
        return [DeadLetter(*row) for row in self._read(sql, (limit,))]

    def dead_letter_count(self) -> int:
        """Refused records kept now (at most `DEAD_LETTERS_KEPT`)."""
        return self._read("SELECT COUNT(*) FROM dead_letters")[0][0]

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._readers.close()
        self._writer.close()
