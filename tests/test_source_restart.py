"""Kill `ima stream` mid-stream and start it again: nothing lost, nothing counted twice.

The real command runs as a child process against loopback Jetstream and the real
NATS server; it is SIGKILLed once some posts are stored, then restarted.
"""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import wait_for
from ima.store import Store
from servers import Jetstream, jetstream_like, jetstream_post
from test_source_nats import _consumer_state, _drop_stream, _publish

T0 = 1_763_805_600_000_000


def _count(data: Path) -> int:
    path = data / "log.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=10) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM posts").fetchone()[0]
        except sqlite3.OperationalError:  # schema not created yet
            return 0


def _stream(data: Path, spec: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ima", "--data-dir", str(data), "stream", spec, "--quiet"],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # killed as a group: its ingest workers die with it
    )


def _kill_then_finish(data: Path, spec: str, done, *, kill_at: int, env=None) -> None:
    child = _stream(data, spec, env)
    try:
        wait_for(lambda: _count(data) >= kill_at, f"{kill_at} posts before the kill", 60)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert not done(), "the stream finished before the kill; slow it down"
    child = _stream(data, spec, env)
    try:
        wait_for(done, "the restarted stream to catch up", 60)
    finally:
        child.send_signal(signal.SIGTERM)  # a clean stop this time
        assert child.wait(30) == 0, child.stderr.read().decode()[-2000:]


def test_jetstream_kill_and_restart(tmp_path: Path):
    posts = 400
    events = []
    for i in range(posts):
        events.append(jetstream_post("did:plc:a", f"p{i}", f"restart post {i}", T0 + 2 * i))
        events.append(jetstream_like("did:plc:b", f"l{i}", "did:plc:a", f"p{i}", T0 + 2 * i + 1))
    data = tmp_path / "data"
    last = str(events[-1]["time_us"])

    def done() -> bool:
        with sqlite3.connect(data / "log.sqlite3", timeout=10) as db:
            row = db.execute("SELECT value FROM cursors WHERE source='bluesky'").fetchone()
        return row is not None and row[0] == last

    with Jetstream(events, per_second=400) as server:
        spec = f"bluesky:{server.url('/subscribe', 'ws')}"
        _kill_then_finish(data, spec, done, kill_at=100)
        assert len(server.cursors) == 2 and server.cursors[1] is not None
    store = Store(data)
    try:
        assert store.stats().posts == posts
        likes = [store.get(f"bluesky:at://did:plc:a/app.bsky.feed.post/p{i}") for i in range(posts)]
        assert [sp.post.metrics.likes for sp in likes] == [1] * posts  # no like counted twice
    finally:
        store.close()


def test_nats_kill_and_restart(tmp_path: Path):
    subject = f"test.restart.{uuid.uuid4().hex[:8]}"
    url = f"nats://127.0.0.1:4222/{subject}"
    records = [
        json.dumps(
            {"id": f"n{i}", "text": f"bus post {i}", "created_at": T0 // 1_000_000, "author": "a"}
        ).encode()
        for i in range(20_000)
    ]
    asyncio.run(_publish(url, records))
    data = tmp_path / "data"
    try:
        _kill_then_finish(
            data,
            f"nats:{url}",
            lambda: (
                _count(data) == len(records)
                and asyncio.run(_consumer_state(subject, "ima")) == (0, 0)
            ),
            kill_at=2_000,
            env={"IMA_SOURCE_NATS_ACK_WAIT_S": "1"},
        )
    finally:
        asyncio.run(_drop_stream(subject))
    assert _count(data) == len(records)  # ids are unique in the log: none stored twice
