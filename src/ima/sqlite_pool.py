"""A bounded pool of SQLite connections for threads that come and go.

A connection per thread (`threading.local`) is never closed when its thread ends
unless the collector happens to run, and a server's worker threads come and go: file
descriptors piled up by the thousand. A connection is borrowed for one statement's
rows and given back; at most `size` are ever open (SQLite also keeps a closed
connection's descriptors while others hold the file, so closing spares is not enough),
and a reader finding all of them busy waits for one. Its users bind lists of values
as one parameter (`IN_LIST`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence

#: a list of ids or seqs bound as one JSON parameter: one statement whatever the list's
#: length. With `IN (?, ?, …)` every length was a statement of its own, and each reading
#: connection kept up to 128 of them prepared: a server's memory grew for minutes as
#: searches of new result sizes came in (README "Hardening").
IN_LIST = "IN (SELECT value FROM json_each(?))"


class ConnectionPool:
    def __init__(self, connect: Callable[[], sqlite3.Connection], size: int = 8) -> None:
        self._connect = connect
        self._idle: list[sqlite3.Connection] = []
        self._open = 0
        self._size = size
        self._ready = threading.Condition()

    def rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """All rows of one statement (reads; or a write, committed on its own)."""
        conn = self._borrow()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            with self._ready:
                self._idle.append(conn)
                self._ready.notify()

    def _borrow(self) -> sqlite3.Connection:
        with self._ready:
            while not self._idle and self._open >= self._size:
                self._ready.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._connect()
        except BaseException:
            with self._ready:
                self._open -= 1
                self._ready.notify()
            raise

    def close(self) -> None:
        with self._ready:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for conn in idle:
            conn.close()
