"""NATS JetStream: the team-scale ingest bus (many producers, one store).

Messages carry one record each in the replay schema (JSON). A durable pull
consumer reads them and acknowledges each only after its batch is committed
(bad records too, once counted: redelivering them would not make them good).
After a crash, JetStream redelivers what was not acknowledged once `ack_wait`
passes; a record stored before the crash comes back as a no-op update, so
nothing is lost and nothing is stored twice. `publish` is the producer side.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

from ima.errors import BadInput
from ima.ingest.normalize import JsonLine
from ima.sources.base import Backoff, Sink, Source

DEFAULT_SUBJECT = "posts"
_STREAM_NAME = re.compile(r"[^A-Za-z0-9_-]")


def parse_url(url: str) -> tuple[str, str]:
    """`nats://host:4222/subject` → (server URL, subject); the subject defaults to `posts`."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise BadInput(f"NATS URL must look like nats://HOST:PORT/SUBJECT, got {url!r}")
    server = f"{parts.scheme}://{parts.netloc}"
    subject = parts.path.strip("/").replace("/", ".") or DEFAULT_SUBJECT
    return server, subject


def stream_name(subject: str) -> str:
    """The JetStream stream `ima` creates for a subject when none captures it."""
    return "IMA_" + _STREAM_NAME.sub("_", subject.replace(".", "_").replace("*", "ANY")).upper()


async def ensure_stream(js: Any, subject: str) -> str:
    """The name of a stream capturing `subject`, created if there is none."""
    try:
        return await js.find_stream_name_by_subject(subject)
    except NotFoundError:
        name = stream_name(subject)
        await js.add_stream(StreamConfig(name=name, subjects=[subject]))
        return name


async def _quiet(_error: Exception) -> None:
    """The client would log every failed attempt; callers count and report failures."""


async def _connect(server: str) -> Any:
    """One connection attempt: reconnecting (with back-off) is the caller's job.
    (With `allow_reconnect=False` the client never returns from a refused first
    connect, so it is allowed one quick retry instead, under an overall time limit.)"""
    return await asyncio.wait_for(
        nats.connect(
            server,
            connect_timeout=5,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=_quiet,
        ),
        timeout=15,
    )


#: how long a pull for the rest of a batch may wait when nothing more is there yet
REST_S = 0.005


class NatsSource(Source):
    source = "nats"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        durable: str = "ima",
        ack_wait_s: float = 30.0,
        fetch_batch: int = 256,
        max_ack_pending: int = 20_000,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, url)
        self.server, self.subject = parse_url(url)
        self.durable = durable
        self.ack_wait_s = ack_wait_s
        self.fetch_batch = fetch_batch
        self.max_ack_pending = max_ack_pending  # also bounds what sits unacknowledged in memory
        self.backoff = backoff or Backoff(0.5, 30.0)
        self._acks: set[asyncio.Future] = set()
        self._connection: Any = None

    async def run(self, sink: Sink) -> None:
        while True:
            try:
                await self._session(sink)
                reason = "connection closed"
            except (OSError, NatsError, TimeoutError) as exc:
                self.health.error("connection", type(exc).__name__)
                reason = f"{type(exc).__name__}: {exc}"
            await self.pause(self.backoff.next(), reason)

    async def _session(self, sink: Sink) -> None:
        nc = self._connection = await _connect(self.server)
        try:
            js = nc.jetstream()
            stream = await ensure_stream(js, self.subject)
            config = ConsumerConfig(
                durable_name=self.durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait_s,
                max_ack_pending=self.max_ack_pending,
                filter_subject=self.subject,
            )
            subscription = await js.pull_subscribe(
                self.subject, durable=self.durable, stream=stream, config=config
            )
            self.health.connected = True
            self.backoff.reset()
            while nc.is_connected:
                try:  # waits for the first message only: a pull for a whole batch waits
                    # until the batch is full or its time is up, which kept a post that
                    # came alone from the store for up to that second
                    messages = await subscription.fetch(1, timeout=1.0)
                except TimeoutError:  # nats' own, or asyncio's when a late 408 ends the wait
                    continue
                with contextlib.suppress(TimeoutError):  # and whatever else is there now
                    messages += await subscription.fetch(self.fetch_batch - 1, timeout=REST_S)
                lines = []
                for message in messages:
                    self.health.event()
                    lines.append(JsonLine(message.metadata.sequence.stream, message.data))
                await sink.put(lines, self.source, self._acker(messages))  # one batch, not one each
        except asyncio.CancelledError:
            raise  # stopping: `finish` acknowledges what is being committed, then closes
        except BaseException:
            await nc.close()
            raise
        await nc.close()

    async def finish(self) -> None:
        await asyncio.sleep(0)  # let commit callbacks scheduled so far start their acks
        if self._acks:
            await asyncio.wait(set(self._acks), timeout=5)
        if self._connection is not None:
            await self._connection.close()

    def _acker(self, messages: list[Any]) -> Callable[[], None]:
        def on_commit() -> None:
            for message in messages:
                task = asyncio.ensure_future(message.ack())
                self._acks.add(task)  # held until done: a dropped task may never run
                task.add_done_callback(self._acks.discard)

        return on_commit


async def publish(url: str, records: Iterable[bytes], *, window: int = 512) -> AsyncIterator[int]:
    """Publish raw JSON records to the subject in `url`, yielding how many are confirmed
    so far; each publish waits for JetStream's acknowledgement (at most `window` in flight)."""
    server, subject = parse_url(url)
    nc = await _connect(server)
    try:
        js = nc.jetstream()
        await ensure_stream(js, subject)
        pending: list[asyncio.Future] = []
        done = 0
        for data in records:
            pending.append(asyncio.ensure_future(js.publish(subject, data)))
            if len(pending) >= window:
                await asyncio.gather(*pending)
                done += len(pending)
                pending = []
                yield done
        if pending:
            await asyncio.gather(*pending)
            done += len(pending)
            yield done
    finally:
        await nc.close()
