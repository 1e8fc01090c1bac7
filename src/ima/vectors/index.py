"""Post vectors: stored in SQLite beside the log, searched by brute force in numpy.

Vectors live in `vectors.sqlite3` (seq, created time, float32 bytes) so any
process can search what the embedding worker wrote. For search they are loaded
into hourly partitions (a matrix per hour of `created_at`), and a query scans
only the partitions its time window touches: exact, and fast for the recent
windows most questions ask about. A partition is reloaded when its row count changed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ima.post import Post
from ima.sqlite_pool import IN_LIST, ConnectionPool

_HOUR_US = 3_600_000_000


@dataclass
class _Partition:
    rows: int
    seqs: np.ndarray
    created: np.ndarray
    matrix: np.ndarray


class VectorIndex:
    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self._partitions: dict[int, _Partition] = {}
        self._lock = threading.Lock()
        self._writer = self._connect()
        self._writer.execute(
            "CREATE TABLE IF NOT EXISTS vectors (seq INTEGER PRIMARY KEY, "
            "hour INTEGER NOT NULL, created_us INTEGER NOT NULL, vec BLOB NOT NULL)"
        )
        self._writer.execute("CREATE INDEX IF NOT EXISTS vectors_hour ON vectors(hour)")
        self._read = ConnectionPool(self._connect, size=4)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False,
                               isolation_level=None)  # fmt: skip
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def add(self, seqs: list[int], created_us: list[int], vectors: np.ndarray) -> None:
        rows = [
            (seq, created // _HOUR_US, created, vec.astype(np.float32).tobytes())
            for seq, created, vec in zip(seqs, created_us, vectors, strict=True)
        ]
        with self._lock:  # one writing connection, shared by the embedding threads
            self._writer.execute("BEGIN")
            self._writer.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
            self._writer.execute("COMMIT")

    def count(self) -> int:
        return self._read.rows("SELECT COUNT(*) FROM vectors")[0][0]

    def embedded(self, seqs: list[int]) -> set[int]:
        listed = json.dumps([int(seq) for seq in seqs])
        rows = self._read.rows(f"SELECT seq FROM vectors WHERE seq {IN_LIST}", (listed,))
        return {r[0] for r in rows}

    def close(self) -> None:
        self._read.close()
        self._writer.close()

    def _partition(self, hour: int, rows: int) -> _Partition:
        with self._lock:
            cached = self._partitions.get(hour)
        if cached is not None and cached.rows == rows:
            return cached
        data = self._read.rows("SELECT seq, created_us, vec FROM vectors WHERE hour = ?", (hour,))
        partition = _Partition(
            len(data),
            np.array([r[0] for r in data], dtype=np.int64),
            np.array([r[1] for r in data], dtype=np.int64),
            np.frombuffer(b"".join(r[2] for r in data), dtype=np.float32).reshape(
                len(data), self.dim
            ),
        )
        with self._lock:
            self._partitions[hour] = partition
        return partition

    def search(self, query: np.ndarray, low_us: int, high_us: int, k: int) -> list[int]:
        """Seqs of the `k` most similar vectors created in [low_us, high_us]."""
        return [seq for _, seq in self.scored(query, low_us, high_us, k)]

    def scored(
        self, query: np.ndarray, low_us: int, high_us: int, k: int
    ) -> list[tuple[float, int]]:
        """(cosine similarity, seq) of the `k` most similar vectors created in [low_us,
        high_us], most similar first: a caller can tell a near match from the nearest of
        nothing (a question in one language and posts in another)."""
        best: list[tuple[float, int]] = []
        # only the hours that hold vectors: a range of centuries costs what its data does
        hours = self._read.rows(
            "SELECT hour, COUNT(*) FROM vectors WHERE hour BETWEEN ? AND ? GROUP BY hour",
            (low_us // _HOUR_US, high_us // _HOUR_US),
        )
        for hour, rows in hours:
            part = self._partition(hour, rows)
            scores = part.matrix @ query
            scores[(part.created < low_us) | (part.created > high_us)] = -np.inf
            top = np.argsort(scores)[::-1][:k]
            best += [(float(scores[i]), int(part.seqs[i])) for i in top if np.isfinite(scores[i])]
        best.sort(reverse=True)
        return best[:k]


class Ranked(list[Post]):
    """Posts, best first, with the cosine similarity to the question of those found by
    meaning (post id → similarity)."""

    def __init__(self, posts: Iterable[Post] = (), similarity: dict[str, float] | None = None):
        super().__init__(posts)
        self.similarity: dict[str, float] = similarity or {}
