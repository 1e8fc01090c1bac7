"""Crash safety: SIGKILL the ingest process at random points; acknowledged posts survive.

Each run feeds numbered posts through the real pipeline in a child process that
writes each acknowledged id to a file (flushed: the OS keeps it when the process
dies). After the kill, the store is reopened: every acknowledged post must be in
the log and found by search exactly once, and nothing may be in the index twice.
"""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ima.search import search
from ima.store import Store

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ima.ingest import Pipeline
    from ima.store import Store

    data, acks, start = Path(sys.argv[1]), open(sys.argv[2], "a"), int(sys.argv[3])
    store = Store(data, commit_interval=0.02)
    def ack(post_id, status, error):
        if post_id:
            acks.write(post_id + "\\n")
            acks.flush()
    with Pipeline(store, batch_size=50, max_wait=0.001) as pipeline:
        for n in range(start, start + 100_000):
            pipeline.submit({"id": str(n), "text": f"crash test marker{n} body", "author": "a",
                             "created_at": 1700000000 + n}, ack, source="crash")
    """
)


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path):
    rng = random.Random(5)
    data, acks = tmp_path / "data", tmp_path / "acks.txt"
    acks.touch()
    start = 0
    for _ in range(8):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(acks), str(start)],
                                 start_new_session=True)  # fmt: skip
        time.sleep(rng.uniform(1.5, 3.0))  # imports take ~1 s; then it ingests
        os.killpg(child.pid, signal.SIGKILL)  # the process and its ingest workers
        child.wait()
        acked = [line for line in acks.read_text().splitlines() if line]
        store = Store(data)
        try:
            counts = store.counts()
            assert counts["posts"] >= len(set(acked))
            assert store.lexical.searcher.num_docs == counts["originals"]  # no doubles
            for post_id in rng.sample(acked, min(40, len(acked))):
                n = post_id.split(":")[1]
                hits = search(store, f"marker{n}", k=5).hits
                assert [h.post.id for h in hits] == [post_id]
            start = store.last_seq + 1000  # new ids for the next run
        finally:
            store.close()
    assert len(set(acked)) == len(acked)
    assert len(acked) > 100
