"""A source faster than the store slows down instead of buffering: memory stays bounded.

Python's own allocations are traced (tracemalloc): frames buffered anywhere on our
side (the WebSocket client, the sink, the ingest queue) would be Python objects.
Process RSS also grows for reasons unrelated to buffering (SQLite's page cache,
tantivy's indexing arena), so it is reported but not asserted.
"""

import time
import tracemalloc
from pathlib import Path

from conftest import stream_until
from ima.sources.base import Backoff
from ima.sources.jetstream import Jetstream as JetstreamSource
from ima.store import Store
from servers import Jetstream, jetstream_post

T0 = 1_763_805_600_000_000
EVENTS = 3_000
PADDING = 25_000  # bytes of each frame that the post does not keep: 75 MB on the wire


class SlowStore(Store):
    """The real store, made slow on purpose: each batch commit takes 10 ms longer."""

    def write(self, *args, **kwargs):
        time.sleep(0.01)
        return super().write(*args, **kwargs)


def test_a_fast_stream_into_a_slow_store_keeps_memory_bounded(tmp_path: Path):
    events = [
        jetstream_post("did:plc:a", f"p{i}", f"post {i}", T0 + i, extra={"blob": "x" * PADDING})
        for i in range(EVENTS)
    ]
    store = SlowStore(tmp_path / "data", commit_interval=0.2)
    try:
        with Jetstream(events) as server:
            source = JetstreamSource(
                "bluesky", server.url("/subscribe", "ws"), backoff=Backoff(0.05, 0.2)
            )
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                stream_until(
                    store,
                    [source],
                    lambda: store.stats().posts == EVENTS,
                    timeout=120,
                    batch_size=50,
                    queue_size=8,
                )
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert server.sent >= EVENTS  # (more if a reconnect replayed some)
    finally:
        store.close()
    growth_mb = (peak - baseline) / 1e6
    streamed_mb = EVENTS * PADDING / 1e6
    print(f"peak traced memory growth {growth_mb:.1f} MB while {streamed_mb:.0f} MB streamed")
    assert growth_mb < 16, f"{growth_mb:.1f} MB held: the stream was buffered, not held back"
