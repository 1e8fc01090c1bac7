"""NATS JetStream against the real nats-server on this machine (127.0.0.1:4222)."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from conftest import stream_until
from ima.sources.base import Backoff
from ima.sources.nats import NatsSource, ensure_stream, publish

SERVER = "nats://127.0.0.1:4222"


async def _consumer_info(subject: str, durable: str) -> Any:
    nc = await nats.connect(SERVER)
    try:
        js = nc.jetstream()
        return await js.consumer_info(await js.find_stream_name_by_subject(subject), durable)
    finally:
        await nc.close()


async def _consumer_state(subject: str, durable: str) -> tuple[int, int]:
    info = await _consumer_info(subject, durable)
    return info.num_pending, info.num_ack_pending


def _settled_info(subject: str, durable: str, settled: Callable[[Any], bool]) -> Any:
    """The consumer's info once `settled(info)`, or as it is after 5 s: acknowledgements
    sent (and flushed) are applied by the server a moment later."""
    deadline = time.monotonic() + 5
    while not settled(info := asyncio.run(_consumer_info(subject, durable))):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return info


def _settled_state(subject: str, durable: str, settled: Callable[[int, int], bool]
                   ) -> tuple[int, int]:  # fmt: skip
    info = _settled_info(subject, durable, lambda i: settled(i.num_pending, i.num_ack_pending))
    return info.num_pending, info.num_ack_pending


async def _drop_stream(subject: str) -> None:
    nc = await nats.connect(SERVER)
    try:
        js = nc.jetstream()
        await js.delete_stream(await ensure_stream(js, subject))
    finally:
        await nc.close()


@pytest.fixture
def subject() -> Iterator[str]:
    name = f"test.posts.{uuid.uuid4().hex[:8]}"
    yield name
    asyncio.run(_drop_stream(name))


async def _read_and_die(subject: str, config: Any, acked: int, held: int) -> None:
    """A reader of the durable consumer `ima` made with `config`: it acknowledges the
    first `acked` messages one by one, fetches `held` more, and dies holding them."""
    nc = await nats.connect(SERVER)
    sub = await nc.jetstream().pull_subscribe(subject, durable="ima", config=config)
    if acked:
        for message in await sub.fetch(acked, timeout=2):
            await message.ack_sync()
    await sub.fetch(held, timeout=2)
    await nc.close()  # dies without acknowledging these


def _records(n: int, start: int = 0) -> list[bytes]:
    return [
        json.dumps(
            {
                "id": f"m{i}",
                "text": f"bus message {i} from the bus",
                "created_at": "2026-11-22T10:00:00Z",
                "author": f"user{i % 7}",
            }
        ).encode()
        for i in range(start, start + n)
    ]


async def _publish(url: str, records: list[bytes]) -> int:
    confirmed = 0
    async for confirmed in publish(url, records):  # noqa: B007 (the last count is the total)
        pass
    return confirmed


def test_durable_consumer_acknowledges_after_commit(store, subject):
    url = f"{SERVER}/{subject}"
    bad = [b"{not json", json.dumps({"id": "x", "created_at": "2026-11-22T10:00:00Z"}).encode()]
    assert asyncio.run(_publish(url, _records(500) + bad)) == 502
    source = NatsSource("bus", url, backoff=Backoff(0.05, 0.2))
    pipeline = stream_until(store, [source], lambda: store.stats().posts == 500)
    assert store.stats().errors == {"invalid_json": 1, "missing_field": 1}
    assert pipeline.stats.new == 500
    # everything, bad records included, was acknowledged: nothing will be redelivered
    assert _settled_state(subject, "ima", lambda *state: state == (0, 0)) == (0, 0)
    # a second run of the same durable consumer picks up only what is new
    asyncio.run(_publish(url, _records(10, start=500)))
    source = NatsSource("bus", url, backoff=Backoff(0.05, 0.2))
    pipeline = stream_until(store, [source], lambda: store.stats().posts == 510)
    assert pipeline.stats.received == 10


def test_unacknowledged_messages_are_redelivered_once_ack_wait_passes(store, subject):
    """A consumer that died between fetch and ack: its messages come back, and the
    ones already stored are not stored twice."""
    url = f"{SERVER}/{subject}"
    asyncio.run(_publish(url, _records(50)))

    asyncio.run(_read_and_die(
        subject, ConsumerConfig(ack_wait=1.0, max_ack_pending=20_000), acked=0, held=30
    ))  # fmt: skip
    source = NatsSource("bus", url, ack_wait_s=1.0, backoff=Backoff(0.05, 0.2))
    stream_until(
        store,
        [source],
        lambda: (
            store.stats().posts == 50 and asyncio.run(_consumer_state(subject, "ima")) == (0, 0)
        ),
        timeout=20,
    )
    assert store.stats().posts == 50


def test_an_older_versions_consumer_is_upgraded_without_loss_or_rereading(store, subject):
    """A consumer that acknowledged each message (as older versions made it), with 20
    acknowledged and 10 delivered but not: the 20 are not read again, nothing is lost,
    and from then on one acknowledgement covers a batch."""
    url = f"{SERVER}/{subject}"
    asyncio.run(_publish(url, _records(50)))

    asyncio.run(_read_and_die(
        subject, ConsumerConfig(ack_policy=AckPolicy.EXPLICIT), acked=20, held=10
    ))  # fmt: skip
    source = NatsSource("bus", url, backoff=Backoff(0.05, 0.2))
    pipeline = stream_until(store, [source], lambda: store.stats().posts == 30)
    assert pipeline.stats.received == 30
    assert store.get("nats:m19") is None and store.get("nats:m20") is not None
    info = _settled_info(subject, "ima", lambda i: (i.num_pending, i.num_ack_pending) == (0, 0))
    assert info.config.ack_policy == AckPolicy.ALL
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


def test_a_lost_consumer_is_made_again_from_the_stored_cursor(store, subject):
    url = f"{SERVER}/{subject}"
    asyncio.run(_publish(url, _records(40)))
    source = NatsSource("bus", url, backoff=Backoff(0.05, 0.2))
    stream_until(store, [source], lambda: store.stats().posts == 40)

    async def delete_consumer() -> None:
        nc = await nats.connect(SERVER)
        js = nc.jetstream()
        await js.delete_consumer(await js.find_stream_name_by_subject(subject), "ima")
        await nc.close()

    asyncio.run(delete_consumer())  # as if the process had died while making it again
    asyncio.run(_publish(url, _records(5, start=40)))
    source = NatsSource("bus", url, backoff=Backoff(0.05, 0.2))
    pipeline = stream_until(store, [source], lambda: store.stats().posts == 45)
    assert pipeline.stats.received == 5


def test_stopping_with_a_backlog_is_prompt_and_loses_nothing(store, subject):
    """Stopped while thousands wait: it stops fetching, commits and acknowledges what it
    handed to ingest, and ends within seconds; the next run takes exactly the rest."""
    url = f"{SERVER}/{subject}"
    total = 20_000
    asyncio.run(_publish(url, _records(total)))
    stopped_at: list[float] = []

    def some_stored() -> bool:
        if store.stats().posts >= 2_000:
            stopped_at.append(time.monotonic())
            return True
        return False

    source = NatsSource("bus", url, backoff=Backoff(0.05, 0.2))
    stream_until(store, [source], some_stored)
    stop_s = time.monotonic() - stopped_at[0]
    assert stop_s < 5, f"took {stop_s:.1f} s to stop"
    first = store.stats().posts
    assert first < total  # a backlog was left
    pending, unacknowledged = _settled_state(
        subject, "ima", lambda pending, unacknowledged: pending + unacknowledged == total - first
    )
    assert pending > 0 and pending + unacknowledged == total - first
    source = NatsSource("bus", url, backoff=Backoff(0.05, 0.2))
    pipeline = stream_until(store, [source], lambda: store.stats().posts == total, timeout=60)
    assert pipeline.stats.received == total - first
