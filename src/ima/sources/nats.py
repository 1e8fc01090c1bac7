"""NATS JetStream: the team-scale ingest bus (many producers, one store).

Messages carry one record each in the replay schema (JSON). A durable pull consumer
reads them into ingest in batches of whatever has arrived, and after a batch is
committed acknowledges its highest message: the consumer's ack policy is `all`, so one
acknowledgement covers every message before it (bad records too, once
counted: redelivering them would not make them good). Each batch also commits a
cursor (the stream, its creation time, the highest sequence stored), the exact place
to resume from should the consumer ever have to be made again.

One acknowledgement covering all earlier messages is only right if every message
delivered before it was stored, so the source keeps to three rules:

- Pulls are asked for on a private inbox, one at a time, never more than the
  subscription holds without dropping; a gap in the consumer's delivery sequence (a
  message delivered but not received) ends the session.
- A session begins by looking at the consumer. A message delivered but not
  acknowledged (the last run stopped or crashed holding it) would be covered by the
  next acknowledgement before JetStream redelivered it, so then, and when the consumer
  has another ack policy or settings (one made by an older version, which acknowledged
  each message) the consumer is made again, to start just after the highest of its
  acknowledged floor and the stored cursor. Nothing is lost; what was stored but not
  acknowledged comes back as a no-op update. Should the process die between deleting
  and making the consumer, the next start makes it from the stored cursor (an older
  version's consumer is upgraded only after its floor is committed as the cursor).
- One consumer has one reader: two `ima` sharing a durable would acknowledge each
  other's messages.

`publish` is the producer side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError

from ima.errors import BadInput
from ima.ingest.changes import Cursor
from ima.ingest.normalize import JsonLine
from ima.sources.base import Backoff, Sink, Source

DEFAULT_SUBJECT = "posts"
_STREAM_NAME = re.compile(r"[^A-Za-z0-9_-]")

#: how long one pull request waits on the server for messages before it ends (408)
PULL_EXPIRES_S = 5.0


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


def sequences(reply: str) -> tuple[int, int]:
    """(stream sequence, consumer sequence) from a message's `$JS.ACK.…` reply subject,
    without the client's full metadata parsing (dates and all), which costs more than
    the rest of a message's handling here."""
    tokens = reply.split(".")
    at = 5 if len(tokens) == 9 else 7  # the newer form adds a domain and an account hash
    try:
        return int(tokens[at]), int(tokens[at + 1])
    except (IndexError, ValueError):
        raise NatsError(f"not a JetStream acknowledgement subject: {reply[:100]!r}") from None


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


class NatsSource(Source):
    source = "nats"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        durable: str = "ima",
        ack_wait_s: float = 30.0,
        fetch_batch: int = 1000,
        max_ack_pending: int = 8000,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name, url)
        self.server, self.subject = parse_url(url)
        self.durable = durable
        self.ack_wait_s = ack_wait_s
        # delivered and not yet acknowledged, at most: bounds memory, and the commits a
        # stop waits for
        self.max_ack_pending = max_ack_pending
        self.fetch_batch = min(fetch_batch, max_ack_pending)  # messages one pull asks for
        self.backoff = backoff or Backoff(0.5, 30.0)
        self._acks: set[asyncio.Task] = set()
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
            info = await js.stream_info(stream)
            epoch = f"{stream}/{info.created.isoformat() if info.created else ''}"
            await self._consumer(js, sink, stream, epoch)
            self.health.connected = True
            self.backoff.reset()
            await self._pull(nc, sink, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{self.durable}", epoch)
        except asyncio.CancelledError:
            raise  # stopping: `finish` acknowledges what is being committed, then closes
        except BaseException:
            await nc.close()
            raise
        await nc.close()

    def _config(self, start: int) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
            opt_start_seq=start if start > 1 else None,
            ack_policy=AckPolicy.ALL,
            ack_wait=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending,
            filter_subject=self.subject,
        )

    async def _consumer(self, js: Any, sink: Sink, stream: str, epoch: str) -> None:
        """Make sure the durable consumer exists, as this version wants it and with no
        message delivered but unacknowledged (see the module's docstring)."""
        stored = sink.cursor(self.name) or ""
        at, _, seq = stored.rpartition("/")
        cursor = int(seq) if at == epoch and seq.isdigit() else 0  # another stream's: none
        try:
            info = await js.consumer_info(stream, self.durable)
        except NotFoundError:
            await js.add_consumer(stream, self._config(cursor + 1))
            return
        config = info.config
        if (
            config.ack_policy == AckPolicy.ALL
            and not info.num_ack_pending
            and config.max_ack_pending == self.max_ack_pending
            and config.ack_wait == self.ack_wait_s
        ):
            return
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        if floor > cursor:  # its floor is stored: a death before it is made again loses nothing
            cursor = floor
            committed = asyncio.get_running_loop().create_future()
            await sink.put(
                [Cursor(self.name, f"{epoch}/{cursor}")], self.source,
                lambda: committed.done() or committed.set_result(None),
            )  # fmt: skip
            await committed
        await js.delete_consumer(stream, self.durable)
        await js.add_consumer(stream, self._config(cursor + 1))

    async def _pull(self, nc: Any, sink: Sink, next_subject: str, epoch: str) -> None:
        """Pull requests, one at a time, on a private inbox; whatever has arrived goes to
        ingest as one batch, with the cursor after it."""
        arrived: list[Any] = []
        ended: list[str] = []  # statuses that ended a pull request
        wake = asyncio.Event()

        async def on_message(message: Any) -> None:
            if message.reply:
                arrived.append(message)
            else:  # a status: 408 when the request expired, others are trouble
                ended.append((message.headers or {}).get("Status", "?"))
            wake.set()

        inbox = nc.new_inbox()
        subscription = await nc.subscribe(
            inbox, cb=on_message, pending_msgs_limit=4 * self.fetch_batch, pending_bytes_limit=0
        )  # one request at a time keeps below the limit: a message dropped would be a gap
        request = json.dumps(
            {"batch": self.fetch_batch, "expires": int(PULL_EXPIRES_S * 1e9)}
        ).encode()
        expecting = 0  # messages the open request may still deliver
        delivered = None  # the consumer sequence of the last message received
        highest = 0
        try:
            while nc.is_connected:
                if expecting <= 0:
                    await nc.publish(next_subject, request, reply=inbox)
                    expecting = self.fetch_batch
                try:
                    async with asyncio.timeout(PULL_EXPIRES_S + 2):
                        await wake.wait()
                except TimeoutError:  # the request's end never came (a lost status)
                    expecting = 0
                    continue
                wake.clear()
                if ended:
                    status, expecting = ended[-1], 0
                    ended.clear()
                    if status != "408":
                        raise NatsError(f"pull request ended with status {status}")
                if not arrived:
                    continue
                messages, arrived = arrived, []
                expecting -= len(messages)
                lines, last = [], 0  # `last`: the batch's highest stream sequence
                for message in messages:
                    seq, consumer_seq = sequences(message.reply)
                    if delivered is not None and consumer_seq != delivered + 1:
                        raise NatsError("a delivered message was not received")
                    delivered = consumer_seq
                    if seq > last:  # a redelivery may come after later messages
                        last, reply = seq, message.reply
                    lines.append(JsonLine(seq, message.data))
                self.health.event(count=len(lines))
                highest = max(highest, last)
                lines.append(Cursor(self.name, f"{epoch}/{highest}"))
                await sink.put(lines, self.source, self._acker(nc, reply))
        finally:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()

    def _acker(self, nc: Any, reply: str) -> Any:
        """Acknowledges, once the batch is committed, the message of its highest stream
        sequence, and so every message before it."""

        def on_commit() -> None:
            task = asyncio.ensure_future(nc.publish(reply, b"+ACK"))
            self._acks.add(task)  # held until done: a dropped task may never run
            task.add_done_callback(self._acks.discard)

        return on_commit

    async def finish(self) -> None:
        await asyncio.sleep(0)  # let commit callbacks scheduled so far start their acks
        if self._acks:
            await asyncio.wait(set(self._acks), timeout=5)
        if self._connection is not None:
            with contextlib.suppress(NatsError, TimeoutError):
                await self._connection.flush(timeout=2)  # the acks reach the server
            await self._connection.close()


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
