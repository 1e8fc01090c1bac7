"""A small pool of SQLite connections for threads that come and go.

A connection per thread (`threading.local`) is never closed when its thread ends
unless the collector happens to run, and a server's worker threads come and go: file
descriptors (three per WAL connection) piled up by the thousand. A connection is
borrowed for one statement's rows and given back; at most `idle` wait open.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence


class ConnectionPool:
    def __init__(self, connect: Callable[[], sqlite3.Connection], idle: int = 8) -> None:
        self._connect = connect
        self._idle: list[sqlite3.Connection] = []
        self._most_idle = idle
        self._lock = threading.Lock()

    def rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """All rows of one statement (reads; or a write, committed on its own)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            with self._lock:
                keep = len(self._idle) < self._most_idle
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
