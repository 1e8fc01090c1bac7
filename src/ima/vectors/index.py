"""Post vectors: stored in SQLite beside the log, searched by brute force in numpy.

Vectors live in `vectors.sqlite3` (seq, created time, float32 bytes) so any
process can search what the embedding worker wrote. For search they are loaded
into hourly partitions (a matrix per hour of `created_at`), and a query scans
only the partitions its time window touches: exact, and fast for the recent
windows most questions ask about. A partition is reloaded when its row count changed.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
        self._local = threading.local()
        self._partitions: dict[int, _Partition] = {}
        self._lock = threading.Lock()
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (seq INTEGER PRIMARY KEY, "
                "hour INTEGER NOT NULL, created_us INTEGER NOT NULL, vec BLOB NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS vectors_hour ON vectors(hour)")

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.path, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def add(self, seqs: list[int], created_us: list[int], vectors: np.ndarray) -> None:
        rows = [
            (seq, created // _HOUR_US, created, vec.astype(np.float32).tobytes())
            for seq, created, vec in zip(seqs, created_us, vectors, strict=True)
        ]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)

    def count(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def embedded(self, seqs: list[int]) -> set[int]:
        found: set[int] = set()
        for i in range(0, len(seqs), 500):
            chunk = seqs[i : i + 500]
            sql = f"SELECT seq FROM vectors WHERE seq IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self._db().execute(sql, chunk))
        return found

    def _partition(self, hour: int) -> _Partition | None:
        db = self._db()
        rows = db.execute("SELECT COUNT(*) FROM vectors WHERE hour = ?", (hour,)).fetchone()[0]
        if rows == 0:
            return None
        with self._lock:
            cached = self._partitions.get(hour)
        if cached is not None and cached.rows == rows:
            return cached
        data = db.execute(
            "SELECT seq, created_us, vec FROM vectors WHERE hour = ?", (hour,)
        ).fetchall()
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
        best: list[tuple[float, int]] = []
        for hour in range(low_us // _HOUR_US, high_us // _HOUR_US + 1):
            part = self._partition(hour)
            if part is None:
                continue
            scores = part.matrix @ query
            scores[(part.created < low_us) | (part.created > high_us)] = -np.inf
            top = np.argsort(scores)[::-1][:k]
            best += [(float(scores[i]), int(part.seqs[i])) for i in top if np.isfinite(scores[i])]
        best.sort(reverse=True)
        return [seq for _, seq in best[:k]]
