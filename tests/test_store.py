"""Store internals that have no other visible effect: WAL checkpoints, thread priorities."""

import os
import sys
import time
from pathlib import Path

import pytest

from conftest import feed, post
from ima.store import Store


def test_wal_is_checkpointed_into_the_database(store):
    feed(store, [post(i, f"checkpoint test post number {i}") for i in range(500)])
    db = store.log.path
    before = db.stat().st_size
    store.log.checkpoint()  # under the threshold: nothing happens
    assert db.stat().st_size == before
    store.log.checkpoint(min_wal_bytes=0)
    assert db.stat().st_size > before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are Linux-only")
def test_index_threads_run_at_lower_priority(tmp_path: Path):
    def nice(tid: int) -> int:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[16])  # field 19 of stat; 3 fields precede in the split

    store = Store(tmp_path / "d")
    try:
        deadline = time.monotonic() + 10  # the thread lowers its own priority once it runs
        while nice(store._indexer.native_id) != 10:
            assert time.monotonic() < deadline, nice(store._indexer.native_id)
            time.sleep(0.01)
        assert nice(os.getpid()) == 0  # the main thread keeps its priority
    finally:
        store.close()


def test_stats_survive_files_vanishing_while_they_are_counted(tmp_path, monkeypatch):
    """Index files come and go while a writer commits; stats (and /healthz) must not fail."""
    from pathlib import Path

    from ima.store.store import _disk_bytes

    (tmp_path / "kept").write_bytes(b"12345")
    (tmp_path / "gone").write_bytes(b"x")
    real_stat = Path.stat

    def vanishing(self, *args, **kwargs):
        if self.name == "gone":
            raise FileNotFoundError(self)
        return real_stat(self, *args, **kwargs)

    real_is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda self: self.name == "gone" or real_is_file(self))
    monkeypatch.setattr(Path, "stat", vanishing)  # "gone" vanishes between the two calls
    assert _disk_bytes(tmp_path) == 5


def test_rows_read_at_once_are_the_rows_as_stored(tmp_path):
    """Posts are read back in one step as JSON (`PostLog._at_once`): every kind of value
    must come back exactly as a plain read of the same rows gives it."""
    import sqlite3

    from ima.store.log import _ROW

    odd = 'quote " backslash \\ tab \t newline \n bell \x07 nul-free é 東京 🙂 \u2028 end'
    store = Store(tmp_path / "d", commit_interval=0.05)
    try:
        feed(store, [
            post(1, odd, author={"handle": "odd", "name": odd, "followers": 2**62}),
            post(2, "FREE crypto giveaway click here https://x.example #a #b #c #d #e",
                 metrics={"likes": 7, "views": 2**40}),
            post(3, "plain words", author="bob", lang="ja"),
        ])  # fmt: skip
        plain = sqlite3.connect(tmp_path / "d" / "log.sqlite3")
        expected = plain.execute(f"SELECT {_ROW} FROM posts ORDER BY seq").fetchall()
        plain.close()
        assert expected[1][22] > 0  # spam: the REAL column holds a fraction
        log = store.log
        assert [(seq, *flat, text, terms) for seq, flat, text, terms in log.scan()] == expected
        fetched = log.fetch([row[0] for row in expected])
        assert [fetched[row[0]].post.text for row in expected] == [row[6] for row in expected]
        assert fetched[expected[0][0]].post.author.name == odd
        assert log.indexed_terms([row[0] for row in expected]) == {
            row[0]: row[26].split() for row in expected
        }
    finally:
        store.close()
