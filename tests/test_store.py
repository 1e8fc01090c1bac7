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
    store = Store(tmp_path / "d")
    try:
        time.sleep(0.1)
        nice = {}
        for tid in os.listdir("/proc/self/task"):
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            nice[int(tid)] = int(fields[16])  # field 19 of stat; 3 fields precede in the split
        assert nice[store._indexer.native_id] == 10
        assert nice[os.getpid()] == 0  # the main thread keeps its priority
    finally:
        store.close()
