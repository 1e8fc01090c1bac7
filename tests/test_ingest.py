"""The pipeline: bad records are counted and skipped, acks follow commits, queues are bounded."""

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

from conftest import feed, post
from ima.ingest import Pipeline
from ima.ingest.normalize import RecordError
from ima.search import search
from ima.sources import replay
from ima.store import Store


def test_bad_records_are_counted_and_nothing_partial_is_stored(store, tmp_path: Path):
    path = tmp_path / "mixed.jsonl"
    good = '{"id": "ok1", "text": "valid post about trains", "created_at": 0, "author": "a"}\n'
    with open(path, "wb") as fh:
        fh.write(good.encode())
        fh.write(b"{not json\n")
        fh.write(b'{"id": "u", "text": "bad \xff bytes", "created_at": 0, "author": "a"}\n')
        fh.write(b'{"id": "m", "created_at": 0, "author": "a"}\n')
        fh.write(b'{"id": "t", "text": 12.5, "created_at": 0, "author": "a"}\n')
        fh.write(
            (
                '{"id": "big", "text": "' + "x" * (1 << 20) + '", "created_at": 0, "author": "a"}\n'
            ).encode()
        )
        fh.write(
            b'{"id": "f", "text": "from the future", "created_at": "2999-01-01", "author": "a"}\n'
        )
        fh.write(b'["an", "array"]\n')
        fh.write(b'{"id": "s", "text": "lone \\ud800 surrogate", "created_at": 0, "author": "a"}\n')
        fh.write(good.replace("ok1", "ok2").replace("valid", "another valid").encode())
    outcomes = []
    with Pipeline(store) as pipeline:
        for record in replay.read(path):
            pipeline.submit(record, lambda *o: outcomes.append(o), source="test")
    assert pipeline.stats.new == 2
    assert dict(pipeline.stats.errors) == {
        "invalid_json": 1,
        "invalid_utf8": 1,
        "missing_field": 1,
        "bad_type": 2,
        "too_long": 1,
        "future_timestamp": 1,
        "invalid_unicode": 1,
    }
    assert [o[1] for o in outcomes].count("error") == 8
    assert all(o[2] for o in outcomes if o[1] == "error")  # each error has a message
    assert store.stats().posts == 2
    assert store.stats().errors["bad_type"] == 2  # counts persist in the log
    assert len(search(store, "trains").hits) == 2


def test_acks_come_after_commit_with_status(store):
    outcomes = []
    with Pipeline(store) as pipeline:
        for record in [
            post(1, "hello world again"),
            post(1, "hello world again", likes=5),
            {"id": 2},
        ]:
            pipeline.submit(record, lambda *o: outcomes.append(o), source="test")
    statuses = sorted((o[0] or "", o[1]) for o in outcomes)
    assert statuses == [("", "error"), ("test:1", "new"), ("test:1", "updated")] or statuses == [
        ("", "error"),
        ("test:1", "updated"),
        ("test:1", "updated"),
    ]
    assert store.get("test:1").post.metrics.likes == 5


def test_a_full_queue_blocks_the_producer(store):
    gate = threading.Event()
    pipeline = Pipeline(store, queue_size=4, batch_size=1)
    original = pipeline._commit

    def slow_commit(batch, prepared):
        gate.wait()
        original(batch, prepared)

    pipeline._commit = slow_commit
    pipeline.start()
    submitted = []

    def produce():
        for i in range(20):
            pipeline.submit(post(i, f"post number {i} text"), source="test")
            submitted.append(i)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(0.3)
    assert len(submitted) <= 4 + 2  # queue bound + one batch in hand + one being committed
    gate.set()
    producer.join(5)
    pipeline.close()
    assert len(submitted) == 20 and pipeline.stats.new == 20


def test_async_sources_and_worker_processes(store):
    async def records():
        for i in range(300):
            yield post(i, f"async record {i} about rain")

    from ima.ingest import ingest

    with Pipeline(store, workers=1) as pipeline:
        ingest(pipeline, records(), source="test")
    assert pipeline.stats.new == 300
    assert len(search(store, "rain", k=100).hits) == 100


def _outcomes_of(store, groups: list[list], **options) -> list[tuple]:
    acks: list[tuple] = []
    with Pipeline(store, **options) as pipeline:
        for group in groups:
            pipeline.submit_many(group, lambda *o: acks.append(o), source="test")
    return acks


def test_a_batch_shared_out_to_preparing_processes_keeps_its_order(tmp_path):
    """A batch of many chunks goes to two preparing processes and, when nothing else
    is in flight, partly to the pipeline thread: what is stored, and every
    acknowledgement, is what preparing it all in one place gives, in the same order
    (a later record of an id wins; a bad line is refused where it stood)."""
    records = [post(i % 200, f"record {i} about shared rain {i % 7}") for i in range(500)]
    records[321] = RecordError("invalid_json", "line 322: bad")
    groups = [records[:450], *([r] for r in records[450:])]  # one big batch, then small ones
    results = []
    for name, options in [("alone", {"workers": 0}), ("shared", {"workers": 2})]:
        store = Store(tmp_path / name, commit_interval=0.05)
        acks = _outcomes_of(store, groups, **options)
        stored = {i: store.get(f"test:{i}").post.text for i in range(200)}
        store.close()
        results.append((acks, stored))
    assert results[0] == results[1]
    acks, stored = results[1]
    assert len(acks) == 500 and acks[321] == (None, "error", "line 322: bad")
    assert stored[7] == "record 407 about shared rain 1"  # the last of 7, 207 and 407


def test_a_preparing_process_killed_idle_or_busy_loses_nothing(store):
    """A preparing process that dies (the kernel's out-of-memory killer, say) while it
    waits for work, or while it prepares, stops nothing: the processes are started
    again, the batches they held are prepared again, and every record is stored once."""
    before = {p.pid for p in multiprocessing.active_children()}

    def preparing() -> list[int]:
        return [p.pid for p in multiprocessing.active_children() if p.pid not in before]

    def kill_one() -> None:
        deadline = time.monotonic() + 30  # processes started again start with their work
        while not preparing() and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = preparing()[0]
        os.kill(victim, signal.SIGKILL)
        before.add(victim)

    acks: list[tuple] = []
    groups = [[post(n, f"record {n} about a dying helper") for n in range(i, i + 200)]
              for i in range(0, 4000, 200)]  # fmt: skip
    with Pipeline(store, workers=2) as pipeline:
        kill_one()  # while it waits for work
        time.sleep(0.5)  # for the pool to see it
        for i, group in enumerate(groups):
            pipeline.submit_many(group, lambda *o: acks.append(o), source="test")
            if i == 10:
                kill_one()  # while batches are in flight
    assert pipeline.failure is None
    assert sorted(a[0] for a in acks) == sorted(f"test:{n}" for n in range(4000))
    assert {a[1] for a in acks} == {"new"} and pipeline.stats.new == 4000
    assert store.stats().originals == 4000
    deadline = time.monotonic() + 10  # the dead ones' partners exit on their own time
    while preparing() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert preparing() == []  # none left behind


def test_hung_preparing_processes_are_killed_and_their_batches_prepared_again(store):
    """Preparing processes that stop answering (SIGSTOP here; a record looping in native
    code would look the same) hold their batches no longer than the time limit: they
    are killed, others started, and every record is stored once."""
    before = {p.pid for p in multiprocessing.active_children()}
    acks: list[tuple] = []
    records = [post(n, f"record {n} about a stuck helper") for n in range(300)]
    with Pipeline(store, workers=2, prepare_timeout=5.0) as pipeline:
        stuck = [p for p in multiprocessing.active_children() if p.pid not in before]
        assert len(stuck) == 2
        for process in stuck:
            os.kill(process.pid, signal.SIGSTOP)
        started = time.monotonic()
        pipeline.submit_many(records, lambda *o: acks.append(o), source="test")
        deadline = started + 60
        while len(acks) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        waited = time.monotonic() - started
    assert sorted(a[0] for a in acks) == sorted(f"test:{n}" for n in range(300))
    assert {a[1] for a in acks} == {"new"} and store.stats().originals == 300
    assert 5.0 <= waited < 25  # the time limit, then one record at a time
    for process in stuck:
        process.join(5)
        assert process.exitcode == -signal.SIGKILL


def test_source_errors_pass_through(store):
    pipeline = feed(store, [RecordError("invalid_json", "line 3: bad")])
    assert pipeline.stats.errors == {"invalid_json": 1}
